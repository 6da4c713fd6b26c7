"""Seed 001's and seed 004's registry clients, unchanged, against a live hub."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import jwt
import pytest
import requests
from django.utils import timezone

from tests import factories as make

from . import seed_clients

pytestmark = pytest.mark.django_db(transaction=True)


class _OneBeat(Exception):
    pass


@pytest.fixture
def seed_env(live_server, monkeypatch):
    monkeypatch.setattr(seed_clients, "CONFIG_SERVICE_URL", live_server.url)
    monkeypatch.setenv("SERVICE_NAME", "user-service")
    monkeypatch.setenv("SERVICE_URL", "http://127.0.0.1:9101")
    monkeypatch.setenv("SERVICE_VERSION", "2.1.0")
    monkeypatch.setenv("REGION", "eu-west-1")
    return live_server


def _add_header_to_requests(monkeypatch, header: str) -> None:
    """API.md: the seed's reads send no credentials; its client adds the one header."""
    original = requests.Session.request

    def request(self, method, url, **kwargs):
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("Authorization", header)
        return original(self, method, url, headers=headers, **kwargs)

    monkeypatch.setattr(requests.Session, "request", request)


def test_seed001__register_beat_discover_list__work_unchanged(seed_env, tenant, make_key, monkeypatch):
    from registry.heartbeats import heartbeat_flush
    from registry.models import Instance

    key = make_key(tenant=tenant, scopes=["registry:read", "registry:write"], name="user-service")
    monkeypatch.setenv("CONFIG_SERVICE_API_KEY", key)
    _add_header_to_requests(monkeypatch, f"ApiKey {key}")

    asyncio.run(seed_clients.register_service())
    instance = Instance.objects.get()
    Instance.objects.filter(pk=instance.pk).update(last_heartbeat=timezone.now() - timedelta(seconds=60))

    # One beat of update_health_status: sleep returns at once, the loop ends after the PUT.
    puts = []
    real_put = requests.put

    def one_put(*args, **kwargs):
        puts.append(real_put(*args, **kwargs))
        raise _OneBeat

    async def no_sleep(_):
        return None

    monkeypatch.setattr(seed_clients.requests, "put", one_put)
    monkeypatch.setattr(seed_clients.asyncio, "sleep", no_sleep)
    with pytest.raises(_OneBeat):
        asyncio.run(seed_clients.update_health_status())

    # The beat's flush writes the buffered heartbeat (every 2 s in production).
    heartbeat_flush()
    instance.refresh_from_db()
    assert puts[0].status_code == 200
    assert (timezone.now() - instance.last_heartbeat).total_seconds() < 10
    assert instance.response_time_ms == 12.5
    assert instance.metadata == {"version": "2.1.0", "region": "eu-west-1"}
    assert seed_clients.discover_service("user-service") == "http://127.0.0.1:9101"
    assert seed_clients.discover_service("billing-service") is None
    listed = seed_clients.get_all_healthy_services()
    assert [(s["service_name"], s["service_url"], s["status"]) for s in listed] == [
        ("user-service", "http://127.0.0.1:9101", "healthy")
    ]


def test_seed001__register_same_url_twice__keeps_one_instance_and_its_id(seed_env, tenant, make_key, monkeypatch):
    key = make_key(tenant=tenant, scopes=["registry:write"])
    body = {"service_name": "user-service", "service_url": "http://127.0.0.1:9101", "health_check_url": "http://127.0.0.1:9101/health"}
    headers = {"Authorization": f"ApiKey {key}"}

    first = requests.post(f"{seed_env.url}/api/v1/registry/register", json=body, headers=headers).json()
    second = requests.post(f"{seed_env.url}/api/v1/registry/register", json=body, headers=headers).json()

    assert first["id"] == second["id"]
    assert (second["service_name"], second["service_url"], second["status"]) == ("user-service", "http://127.0.0.1:9101", "healthy")


def _patch_httpx_headers(monkeypatch, header: str) -> None:
    original = httpx.AsyncClient.__init__

    def init(self, *args, **kwargs):
        kwargs.setdefault("headers", {"Authorization": header})
        original(self, *args, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "__init__", init)


@pytest.mark.parametrize("secret_of", ["shared SERVICE_JWT_SECRET, default tenant", "tenant's own secret"])
def test_seed004__service_url_and_heartbeat_with_own_jwt__work_unchanged(secret_of, seed_env, tenant, default_tenant, settings,
                                                                          monkeypatch):
    from registry.heartbeats import heartbeat_flush
    from registry.models import Instance
    from registry.tokens import service_token_secret_create

    settings.SERVICE_JWT_SECRET = "a-shared-service-secret-for-tests-0123456789"
    if secret_of.startswith("shared"):
        owner, jwt_secret = default_tenant, settings.SERVICE_JWT_SECRET
    else:
        owner, jwt_secret = tenant, service_token_secret_create(tenant=tenant, name="fleet", actor="t")[1]
    storage = make.instance(owner, "storage-service", "http://127.0.0.1:9201")
    me = make.instance(owner, "image-analysis", "http://127.0.0.1:9202")
    Instance.objects.filter(pk=me.pk).update(last_heartbeat=timezone.now() - timedelta(seconds=80))
    # The seed's own token code: jwt.encode({"service_id": ...}, secret, algorithm="HS256").
    token = jwt.encode({"service_id": me.pk}, jwt_secret, algorithm="HS256")
    monkeypatch.setattr(seed_clients, "settings", type("S", (), {"service_id": me.pk, "registry_url": seed_env.url, "jwt_secret": jwt_secret}))
    _patch_httpx_headers(monkeypatch, f"Bearer {token}")

    url = asyncio.run(seed_clients.get_service_url("storage-service"))

    calls = []

    async def stop_after_first(_):
        calls.append(1)
        raise _OneBeat

    monkeypatch.setattr(seed_clients.asyncio, "sleep", stop_after_first)
    with pytest.raises(_OneBeat):
        asyncio.run(seed_clients.heartbeat_loop())

    heartbeat_flush()
    me.refresh_from_db()
    assert url == "http://127.0.0.1:9201"
    assert (timezone.now() - me.last_heartbeat).total_seconds() < 10
    assert storage.pk != me.pk


def test_seed004__token_naming_another_instance__403(seed_env, default_tenant, settings):
    settings.SERVICE_JWT_SECRET = "a-shared-service-secret-for-tests-0123456789"
    a = make.instance(default_tenant, "a", "http://127.0.0.1:9301")
    b = make.instance(default_tenant, "b", "http://127.0.0.1:9302")
    token = jwt.encode({"service_id": a.pk}, settings.SERVICE_JWT_SECRET, algorithm="HS256")

    r = requests.post(f"{seed_env.url}/heartbeat", json={"service_id": b.pk}, headers={"Authorization": f"Bearer {token}"})
    bad = requests.post(f"{seed_env.url}/heartbeat", json={"service_id": a.pk},
                        headers={"Authorization": f"Bearer {jwt.encode({'service_id': a.pk}, 'wrong-secret-wrong-secret-wrong!', algorithm='HS256')}"})

    assert r.status_code == 403
    assert bad.status_code == 401
