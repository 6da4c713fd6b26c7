"""Shared fixtures: tenants, API keys, API clients; outbound network blocked."""
from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

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
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def default_tenant(db):
    from tenants.models import Tenant

    return Tenant.objects.get(slug="default")


@pytest.fixture
def tenant(db):
    from tenants.services import tenant_create

    return tenant_create(slug="acme", name="Acme", actor="test")


@pytest.fixture
def other_tenant(db):
    from tenants.services import tenant_create

    return tenant_create(slug="globex", name="Globex", actor="test")


@pytest.fixture
def environments(db):
    from tenants.models import Environment

    return {e.slug: e for e in Environment.objects.all()}


@pytest.fixture
def make_key(db):
    """``make_key(tenant=None|Tenant, scopes=[...])`` → the raw key."""
    from tenants.services import api_key_create

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
def admin_user(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123")
