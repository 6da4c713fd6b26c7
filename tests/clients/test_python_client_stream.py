"""The Python client (clients/python, ``confighub``) on the change stream of a real hub:
uvicorn serving config_hub.asgi (the Procfile's application) on the test database and
Redis, behind a TCP proxy a test can stop (the hub "down" for the service). Changes
are made through the hub's API, as an operator would."""
from __future__ import annotations

import itertools
import os
import time
from urllib.parse import urlsplit

import pytest
import requests

from confighub import ConfigClient  # from clients/python (tests/clients/conftest.py)
from tests import factories as make
from tests.clients.proxy import Proxy
from tests.conftest import ensure_builtin_rows
from tests.hub_servers import server_env as _server_env
from tests.hub_servers import uvicorn_hub as _uvicorn
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

FAST = {"retry_min": 0.05, "retry_max": 0.3, "timeout": 5}


@pytest.fixture(scope="module")
def asgi_hub(django_db_setup, django_db_blocker, tmp_path_factory):
    """The hub under uvicorn: the stream is a real one (held open, pushed by Redis)."""
    with django_db_blocker.unblock():
        env = _server_env(EVENTS_STREAM_MAX_PER_PROCESS="50", EVENTS_STREAM_KEEPALIVE="15")
    with _uvicorn(tmp_path_factory.mktemp("client-stream") / "uvicorn.log", env) as base:
        yield base


_slugs = itertools.count(1)


@pytest.fixture
def tenant(db):
    """A tenant slug no earlier test used (the server process caches tenants by slug)."""
    ensure_builtin_rows()
    return make.tenant(f"client-{os.getpid()}-{next(_slugs)}")


@pytest.fixture
def billing(tenant, environments):
    return make.config(tenant, "billing.timeout", 30, environment=environments["production"], service_name="billing")


@pytest.fixture
def writer(tenant, make_key):
    return make_key(tenant=tenant, scopes=["configs:read", "configs:write"], name="writer")


@pytest.fixture
def reader(tenant, make_key):
    return make_key(tenant=tenant, scopes=["configs:read", "events:read", "registry:read"], name="billing-service")


def _patch_value(base: str, writer: str, entry_id: int, value) -> None:
    response = requests.patch(f"{base}/api/v1/config/{entry_id}", json={"value": value},
                              headers={"Authorization": f"ApiKey {writer}"}, timeout=10)
    assert response.status_code == 200, response.text


def test_python_client_stream__change_through_api__reaches_client_over_the_stream(asgi_hub, billing, writer, reader,
                                                                                    tmp_path):
    changes = []
    client = ConfigClient(asgi_hub, reader, service="billing", environment="production", cache_dir=str(tmp_path), **FAST)
    client.on_change(lambda key, old, new: changes.append((key, old, new)))
    client.start()
    try:
        assert client.get("billing.timeout") == 30
        assert wait_until(lambda: client.streaming, timeout=10)  # the stream is open

        _patch_value(asgi_hub, writer, billing.pk, 45)

        assert wait_until(lambda: client.get("billing.timeout") == 45, timeout=10)
        assert wait_until(lambda: changes == [("billing.timeout", 30, 45)], timeout=5), changes
        assert client.transport == "stream" and client.last_error is None
    finally:
        client.close()
    assert not client._thread.is_alive()


def test_python_client_stream__hub_stopped__running_and_new_clients_answer_last_known_good__hub_back__both_catch_up(
        asgi_hub, billing, writer, reader, tmp_path):
    host, port = urlsplit(asgi_hub).hostname, urlsplit(asgi_hub).port
    proxy = Proxy(host, port).start()
    running = ConfigClient(proxy.url, reader, service="billing", environment="production",
                           cache_dir=str(tmp_path / "running"), **FAST).start()
    fresh = None
    try:
        assert wait_until(lambda: running.streaming, timeout=10)
        # An earlier run of a second service left its last-known-good copy.
        ConfigClient(proxy.url, reader, service="billing", environment="production", cache_dir=str(tmp_path / "fresh"),
                     transport="poll", **FAST).start().close()

        proxy.stop()  # the hub is down for the services (the open stream is cut)...
        _patch_value(asgi_hub, writer, billing.pk, 60)  # ...and changes meanwhile
        time.sleep(0.5)
        assert running.get("billing.timeout") == 30  # still answering, from memory

        fresh = ConfigClient(proxy.url, reader, service="billing", environment="production",
                             cache_dir=str(tmp_path / "fresh"), **FAST)
        started = time.monotonic()
        fresh.start()
        assert time.monotonic() - started < 5
        assert fresh.source == "cache" and fresh.get("billing.timeout") == 30  # its last-known-good value

        proxy.start()  # the hub is back on the same address

        assert wait_until(lambda: running.get("billing.timeout") == 60, timeout=15)
        assert wait_until(lambda: fresh.get("billing.timeout") == 60, timeout=15)
        assert fresh.source == "hub"
        assert wait_until(lambda: fresh.streaming and running.streaming,
                          timeout=10)
        _patch_value(asgi_hub, writer, billing.pk, 61)  # and both follow the stream again
        assert wait_until(lambda: running.get("billing.timeout") == 61 and fresh.get("billing.timeout") == 61, timeout=10)
        assert running.transport == "stream" and fresh.transport == "stream"
    finally:
        running.close()
        if fresh is not None:
            fresh.close()
        proxy.stop()


def test_python_client_stream__discover__kept_current_by_registry_events(asgi_hub, tenant, make_key, reader, tmp_path):
    service_key = make_key(tenant=tenant, scopes=["configs:read", "registry:write"], name="checkout-instance")
    client = ConfigClient(asgi_hub, reader, service="billing", environment="production", cache_dir=str(tmp_path),
                          discover_ttl=3600, **FAST).start()
    try:
        assert wait_until(lambda: client.streaming, timeout=10)
        assert client.discover("checkout") is None  # asked once: kept (an hour) unless an event says otherwise

        answer = requests.post(f"{asgi_hub}/api/v1/registry/register",
                               json={"service_name": "checkout", "service_url": "http://10.0.0.9:8080"},
                               headers={"Authorization": f"ApiKey {service_key}"}, timeout=10)
        assert answer.status_code in (200, 201), answer.text

        assert wait_until(lambda: client.discover("checkout") == "http://10.0.0.9:8080", timeout=10)

        gone = requests.delete(f"{asgi_hub}/api/v1/registry/instances/{answer.json()['id']}",
                               headers={"Authorization": f"ApiKey {service_key}"}, timeout=10)
        assert gone.status_code in (200, 204), gone.text
        assert wait_until(lambda: client.discover("checkout") is None, timeout=10)
    finally:
        client.close()
