"""Test settings: the base settings on a real PostgreSQL and Redis.

``make test`` exports DATABASE_URL and REDIS_URL; the defaults below are the local
services of a development machine. A process may pick its own test database
(TEST_DATABASE_NAME) and Redis database number so that parallel runs never meet.
"""
import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/1")
# The broker gets its own Redis database: tests flush the cache database.
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/2")
os.environ.setdefault("CONFIG_HUB_VAR_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "var", "test"))

from .base import *  # noqa: E402,F401,F403
from .base import DATABASES  # noqa: E402
from .env import env_str  # noqa: E402

# The test database: TEST_DATABASE_NAME, else test_<the database of DATABASE_URL>
# (so runs pointed at different databases never meet), else test_config_hub.
_named = DATABASES["default"].get("NAME") or ""
DATABASES["default"]["TEST"] = {
    "NAME": env_str("TEST_DATABASE_NAME")
    or (f"test_{_named}" if _named and _named != "postgres" else "test_config_hub")
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
AXES_ENABLED = False
# Webhook receivers and health endpoints of the tests listen on 127.0.0.1; tests of
# the production policy set OUTBOUND_ALLOW_LOOPBACK = False themselves.
OUTBOUND_ALLOW_LOOPBACK = True
