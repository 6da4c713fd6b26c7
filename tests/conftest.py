"""Shared fixtures: tenants, API keys, API clients; outbound network blocked."""
from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests import factories as make

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"

_real_connect = socket.socket.connect


def _loopback_only(self, address):
    # Tests talk to this machine's PostgreSQL, Redis, live servers and webhook
    # receivers only; anything else is a bug in the test (Flagsmith's
    # restrict_http_requests, widened to every socket).
    host = address[0] if isinstance(address, tuple) else None
    if host is not None:
        try:
            ip = ipaddress.ip_address(socket.gethostbyname(host) if not host.replace(".", "").isdigit() and ":" not in host else host)
        except (OSError, ValueError):
            ip = None
        if ip is not None and not ip.is_loopback:
            raise ConnectionRefusedError(f"tests may not reach {host}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True, scope="session")
def _block_outbound_network():
    socket.socket.connect = _loopback_only
    yield
    socket.socket.connect = _real_connect


@pytest.fixture(autouse=True)
def _clear_cache():
    from core.cache import clear_all

    cache.clear()
    clear_all()
    yield
    cache.clear()
    clear_all()


def ensure_builtin_rows() -> None:
    """The rows migration 0002 creates; transactional tests flush them away."""
    from tenants.models import Environment, Tenant

    Tenant.objects.get_or_create(slug="default", defaults={"name": "Default tenant"})
    for slug in ("development", "staging", "production"):
        Environment.objects.get_or_create(slug=slug, defaults={"name": slug.title()})


@pytest.fixture
def default_tenant(db):
    from tenants.models import Tenant

    ensure_builtin_rows()
    return Tenant.objects.get(slug="default")


@pytest.fixture
def tenant(db):
    ensure_builtin_rows()
    return make.tenant("acme")


@pytest.fixture
def other_tenant(db):
    return make.tenant("globex")


@pytest.fixture
def environments(db):
    from tenants.models import Environment

    ensure_builtin_rows()
    return {e.slug: e for e in Environment.objects.all()}


@pytest.fixture
def make_key(db):
    """``make_key(tenant=None|Tenant, scopes=[...])`` → the raw key."""
    from tenants.services.api_keys import api_key_create

    def make(*, tenant=None, scopes=("configs:read",), name=None, environment=None, expires_at=None):
        _, raw = api_key_create(
            name=name or f"key-{'-'.join(scopes)}"[:90], tenant=tenant, scopes=list(scopes),
            environment=environment, expires_at=expires_at, actor="test",
        )
        return raw

    return make


@pytest.fixture
def client_for():
    """``client_for(raw_key)`` → an APIClient sending ``Authorization: ApiKey <key>``."""

    def make(raw_key: str | None = None, scheme: str = "ApiKey", **headers):
        client = APIClient()
        if raw_key:
            client.credentials(HTTP_AUTHORIZATION=f"{scheme} {raw_key}", **headers)
        elif headers:
            client.credentials(**headers)
        return client

    return make


@pytest.fixture
def service_token(db):
    """``service_token(instance, kid=False, **claims)`` → seed 004's token for that
    instance, signed with a secret of the instance's tenant (one per tenant, made on
    first use; ``kid=True`` names it in the header)."""
    import jwt

    from registry.tokens import service_token_secret_create

    made = {}

    def make(instance, *, kid: bool = False, **claims):
        tenant = instance.service.tenant
        if tenant.pk not in made:
            made[tenant.pk] = service_token_secret_create(tenant=tenant, name="test", actor="test")
        row, raw = made[tenant.pk]
        return jwt.encode({"service_id": instance.pk, **claims}, raw, algorithm="HS256",
                          headers={"kid": row.kid} if kid else None)

    return make


class Clock:
    """The wall clock of this process (``time.time`` and ``datetime.now``), frozen
    by a test and moved on with ``advance`` instead of sleeping. ``time.monotonic``
    and other processes (a worker, a live server's client) keep real time."""

    def __init__(self, traveller):
        self._traveller = traveller

    def now(self) -> float:
        import time

        return time.time()

    def advance(self, seconds: float) -> None:
        self._traveller.shift(seconds)


@pytest.fixture
def clock():
    """A :class:`Clock` frozen at the start of the next whole hour, so every fixed
    window the hub counts in (throttles per minute or hour) starts fresh there."""
    import time

    import time_machine

    with time_machine.travel((int(time.time()) // 3600 + 1) * 3600, tick=False) as traveller:
        yield Clock(traveller)


@pytest.fixture
def admin_user(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123")


# --- a real Celery worker ---------------------------------------------------------

import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402


def process_settings() -> dict[str, str]:
    """The environment a process of the hub (worker, server) needs to run on the test
    database, Redis and broker with the test's keys."""
    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    return {
        "DJANGO_SETTINGS_MODULE": "config_hub.settings.base",
        "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL or "",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "FERNET_KEYS": ",".join(settings.FERNET_KEYS),
        "SECRET_KEY": settings.SECRET_KEY,
    }


class WorkerProcess:
    """A real ``celery worker`` subprocess on the test database and the test broker."""

    def __init__(self, log_path: Path, extra_env: dict[str, str] | None = None):
        self.log_path = log_path
        env = os.environ.copy()
        env.update(process_settings())
        env.update(extra_env or {})
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> WorkerProcess:
        celery = str(Path(sys.executable).with_name("celery"))
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [celery, "-A", "config_hub", "worker", "--pool=threads", "--concurrency=8", "--loglevel=INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"test-{os.getpid()}@%h"],
            cwd=REPO, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if b" ready." in self.log_path.read_bytes():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"celery worker not ready in {timeout}s: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()


@pytest.fixture
def celery_worker_env() -> dict[str, str]:
    """Extra environment of the worker process (short registry TTLs for the sweep tests)."""
    return {"REGISTRY_HEARTBEAT_TTL": "2", "REGISTRY_DEREGISTER_AFTER": "4", "REGISTRY_MAX_EVICT_RATIO": "1.0"}


@pytest.fixture
def celery_worker_process(transactional_db, tmp_path, celery_worker_env):
    """Start a real worker (threads pool) against the test database; stop it after the test.

    Tests using it must commit their data (``transactional_db``) so the worker sees it.
    The broker queue is purged first so no message of an earlier test is run.
    """
    from config_hub.celery import app

    app.control.purge()
    worker = WorkerProcess(tmp_path / "worker.log", extra_env=celery_worker_env)
    worker.start()
    yield worker
    worker.stop()
