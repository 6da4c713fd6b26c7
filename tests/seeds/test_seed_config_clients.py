"""Seed 000's ManagementSystemsClient and seed 001's config patterns, unchanged, against a live hub."""
from __future__ import annotations

import asyncio

import pytest
import requests

from tests import factories as make

from . import seed000_client, seed001_clients

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def data(tenant, environments):
    prod = environments["production"]
    make.config(tenant, "email_notifications", {"enabled": True, "frequency": "daily"})
    make.config(None, "feature_flags", {"new_ui_enabled": False})
    make.config(tenant, "feature_flags", {"new_ui_enabled": True})
    make.config(None, "database.url", "postgresql://db/users", environment=prod, service_name="user-service")
    make.config(tenant, "external.api_key", "sk_live_x", environment=prod, service_name="user-service", is_secret=True)
    make.config(None, "retry.max_attempts", "3")
    make.schema("email_notifications", {"type": "object", "required": ["enabled"]})
    return tenant


def test_seed000__management_systems_client__get_set_and_all_tenants(live_server, data, make_key):
    tenant_key = make_key(tenant=data, scopes=["configs:read", "configs:write"])
    platform_key = make_key(tenant=None, scopes=["admin"], name="platform")

    async def scenario():
        client = seed000_client.ManagementSystemsClient(base_url=live_server.url, auth_token=tenant_key)
        admin = seed000_client.ManagementSystemsClient(base_url=live_server.url, auth_token=platform_key)
        try:
            before = await client.get_tenant_config("acme", "email_notifications")
            missing = await client.get_tenant_config("acme", "no.such.key")
            other = await client.get_tenant_config("globex", "email_notifications")
            saved = await client.set_tenant_config("acme", "email_notifications", {"enabled": False, "frequency": "weekly"})
            refused = await client.set_tenant_config("acme", "email_notifications", {"frequency": "weekly"})
            after = await client.get_tenant_config("acme", "email_notifications")
            everyone = await admin.get_config_for_all_tenants("feature_flags")
            denied = await client.get_config_for_all_tenants("feature_flags")
        finally:
            await client.close()
            await admin.close()
        return before, missing, other, saved, refused, after, everyone, denied

    before, missing, other, saved, refused, after, everyone, denied = asyncio.run(scenario())

    assert before == {"enabled": True, "frequency": "daily"}
    assert missing is None and other is None
    assert saved is True and refused is False
    assert after == {"enabled": False, "frequency": "weekly"}
    assert sum(1 for c in everyone if c.get("config_value", {}).get("new_ui_enabled", False)) == 1
    assert sorted(c["tenant_id"] for c in everyone) == ["acme", "default"]
    assert denied == []


def _with_key(monkeypatch, raw_key: str) -> None:
    """API.md: the seed sends no credentials; its client adds the one header."""
    original = requests.Session.request

    def request(self, method, url, **kwargs):
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("Authorization", f"ApiKey {raw_key}")
        return original(self, method, url, headers=headers, **kwargs)

    monkeypatch.setattr(requests.Session, "request", request)


def test_seed001__get_config_client_and_startup_loading(live_server, data, make_key, monkeypatch):
    _with_key(monkeypatch, make_key(tenant=data, scopes=["configs:read", "secrets:read"]))
    monkeypatch.setattr(seed001_clients, "CONFIG_SERVICE_URL", live_server.url)
    monkeypatch.setenv("SERVICE_NAME", "user-service")
    monkeypatch.setenv("ENVIRONMENT", "production")

    database_url = seed001_clients.get_config("database.url", "production", "user-service")
    api_key = seed001_clients.get_config("external.api_key", "production", "user-service")
    retries = int(seed001_clients.get_config("retry.max_attempts", "production", "user-service") or "3")
    with pytest.raises(Exception, match="Failed to fetch config: no.such"):
        seed001_clients.get_config("no.such")
    client = seed001_clients.ConfigClient(live_server.url)
    cached = [client.get_config("database.url", "production", "user-service") for _ in range(2)]
    loaded = asyncio.run(seed001_clients.load_configurations())

    assert database_url == "postgresql://db/users"
    assert api_key == "sk_live_x"
    assert retries == 3
    assert cached == ["postgresql://db/users"] * 2
    assert loaded == {
        "database.url": "postgresql://db/users", "email_notifications": {"enabled": True, "frequency": "daily"},
        "external.api_key": "sk_live_x", "feature_flags": {"new_ui_enabled": True}, "retry.max_attempts": "3",
    }


def _with_headers(monkeypatch, headers: dict[str, str]) -> None:
    """Like ``_with_key`` for any headers (a platform key naming its tenant with X-Tenant-ID)."""
    original = requests.Session.request

    def request(self, method, url, **kwargs):
        merged = dict(kwargs.pop("headers", None) or {})
        for name, value in headers.items():
            merged.setdefault(name, value)
        return original(self, method, url, headers=merged, **kwargs)

    monkeypatch.setattr(requests.Session, "request", request)


@pytest.fixture
def seed001_from_env(live_server, monkeypatch):
    """Seed 001 reads CONFIG_SERVICE_URL from the environment at import: set it, import again."""
    import importlib

    monkeypatch.setenv("CONFIG_SERVICE_URL", live_server.url)
    module = importlib.reload(seed001_clients)
    yield module
    monkeypatch.undo()
    importlib.reload(seed001_clients)


def test_seed001__base_url_from_environment__platform_key_with_x_tenant_id(data, make_key, monkeypatch, seed001_from_env):
    _with_headers(monkeypatch, {
        "Authorization": f"ApiKey {make_key(tenant=None, scopes=['configs:read'], name='platform')}",
        "X-Tenant-ID": "acme",
    })
    monkeypatch.setenv("SERVICE_NAME", "user-service")
    monkeypatch.setenv("ENVIRONMENT", "production")

    flags = seed001_from_env.get_config("feature_flags")
    masked = seed001_from_env.get_config("external.api_key")
    loaded = asyncio.run(seed001_from_env.load_configurations())

    assert seed001_from_env.CONFIG_SERVICE_URL.startswith("http://localhost:")
    assert flags == {"new_ui_enabled": True}  # acme's own value, not the global one
    assert masked is None  # no secrets:read: the value is masked
    assert loaded["external.api_key"] is None and loaded["feature_flags"] == {"new_ui_enabled": True}


def test_seed001__no_credentials__refused_not_served(data, seed001_from_env, monkeypatch):
    monkeypatch.setenv("SERVICE_NAME", "user-service")

    with pytest.raises(Exception, match="Failed to fetch config: feature_flags"):
        seed001_from_env.get_config("feature_flags")
    assert asyncio.run(seed001_from_env.load_configurations()) == {}
    assert seed001_from_env.ConfigClient(seed001_from_env.CONFIG_SERVICE_URL).get_config("feature_flags", "production", "x") is None


def test_seed000__base_url_from_environment__reads_acme(live_server, data, make_key, monkeypatch):
    monkeypatch.setenv("MANAGEMENT_SYSTEMS_URL", live_server.url)
    key = make_key(tenant=data, scopes=["configs:read"])

    async def scenario():
        client = seed000_client.ManagementSystemsClient(auth_token=key)
        try:
            return client.base_url, await client.get_tenant_config("acme", "feature_flags")
        finally:
            await client.close()

    base_url, value = asyncio.run(scenario())

    assert base_url == live_server.url
    assert value == {"new_ui_enabled": True}
