"""Routes of this app, mounted by config_hub/urls.py."""
urlpatterns: list = []
# Routes outside /api/v1/ (seed paths, OFREP), mounted at the site root.
root_urlpatterns: list = []
