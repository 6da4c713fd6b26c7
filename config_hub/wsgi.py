"""WSGI entry point (gunicorn config_hub.wsgi)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config_hub.settings.base")
application = get_wsgi_application()
