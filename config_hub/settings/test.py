"""Test settings: the base settings on a real PostgreSQL and Redis.

The defaults are the local services of a development machine; DATABASE_URL,
REDIS_URL and CELERY_BROKER_URL move them. Names are per checkout, so that two
checkouts (or two runs) on one machine never meet:

- the test database is TEST_DATABASE_NAME, else ``test_ch_<hash of this
  checkout's path>`` (plus the Redis slot below when it is not the checkout's own);
- without REDIS_URL, the cache and the broker take a pair of Redis databases
  (1+2, 3+4, ... 13+14) chosen from the same hash, claimed for the life of the
  process with a lock file: a pair another run holds is skipped. With REDIS_URL
  set, it is used as given (and the broker takes CELERY_BROKER_URL, else the
  next database number).

The fault tests (tests/faults) start a PostgreSQL cluster and a Redis of their
own and never stop these.
"""
import fcntl
import hashlib
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

_CHECKOUT = Path(__file__).resolve().parent.parent.parent
_HASH = hashlib.sha256(str(_CHECKOUT).encode()).hexdigest()[:8]
_PAIRS = 7  # Redis has databases 0..15 by default; 0 is left to the developer's own hub
_slot_lock = None  # the open lock file: held until the process exits


def _claim_redis_slot() -> int:
    """The first free pair of Redis databases, starting from this checkout's own."""
    global _slot_lock
    start = int(_HASH, 16) % _PAIRS
    for i in range(_PAIRS):
        slot = (start + i) % _PAIRS
        path = Path(tempfile.gettempdir()) / f"config-hub-test-redis-{slot}.lock"
        fh = open(path, "a+")  # noqa: SIM115 - kept open: the lock lasts as long as the process
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            continue
        _slot_lock = fh
        return slot
    raise ImproperlyConfigured(f"all {_PAIRS} test Redis database pairs are in use: set REDIS_URL and CELERY_BROKER_URL")


def _with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


_db_suffix = ""
if not os.environ.get("REDIS_URL"):
    _slot = _claim_redis_slot()
    if _slot != int(_HASH, 16) % _PAIRS:
        _db_suffix = f"_{_slot}"
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:6379/{1 + 2 * _slot}"
    os.environ["CELERY_BROKER_URL"] = f"redis://127.0.0.1:6379/{2 + 2 * _slot}"
elif not os.environ.get("CELERY_BROKER_URL"):
    # The broker gets its own Redis database: tests flush the cache database.
    _cache_db = int(urlsplit(os.environ["REDIS_URL"]).path.strip("/") or 0)
    os.environ["CELERY_BROKER_URL"] = _with_db(os.environ["REDIS_URL"], _cache_db + 1)
if not os.environ.get("DATABASE_URL"):
    os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/postgres"
os.environ.setdefault("CONFIG_HUB_VAR_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "var", "test"))

from .base import *  # noqa: E402,F401,F403
from .base import DATABASES, VAR_DIR  # noqa: E402
from .env import env_str  # noqa: E402

DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME") or f"test_ch_{_HASH}{_db_suffix}"}
# WhiteNoise warns about a missing STATIC_ROOT; the tests' own (collectstatic is not run).
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
AXES_ENABLED = False
# Webhook receivers and health endpoints of the tests listen on 127.0.0.1; tests of
# the production policy set OUTBOUND_ALLOW_LOOPBACK = False themselves.
OUTBOUND_ALLOW_LOOPBACK = True
# One Redis write per buffered beat: a web process's in-memory beats (pushed by a
# background thread) are tested with the setting on (tests/registry/test_heartbeat_buffer.py).
REGISTRY_HEARTBEAT_LOCAL_INTERVAL = 0
