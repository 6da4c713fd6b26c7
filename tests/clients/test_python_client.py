"""The Python client (clients/python, ``confighub``) against a real hub (live_server):
values, changes pushed by the long poll (the stream: test_python_client_stream.py), the last-known-good copy when the hub is
down, secrets in that copy, polling without ``events:read``, the registry helpers."""
from __future__ import annotations

import json
import os
import stat
import time
from urllib.parse import urlsplit

import pytest
import requests

from confighub import ConfigClient  # from clients/python (tests/clients/conftest.py)
from tests import factories as make
from tests.clients.proxy import Proxy
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

# Short long polls: a server thread of live_server holds each one until it ends.
FAST = {"retry_min": 0.05, "retry_max": 0.3, "timeout": 5, "wait": 2, "transport": "longpoll"}


def _patch_value(base: str, writer: str, entry_id: int, value) -> None:
    response = requests.patch(f"{base}/api/v1/config/{entry_id}", json={"value": value},
                              headers={"Authorization": f"ApiKey {writer}"}, timeout=10)
    assert response.status_code == 200, response.text


@pytest.fixture
def billing(tenant, environments):
    """``billing.timeout`` = 30 for billing in production, a tenant-wide ``feature.x``,
    and a value of another service that the client must not see."""
    production = environments["production"]
    entry = make.config(tenant, "billing.timeout", 30, environment=production, service_name="billing")
    make.config(tenant, "feature.x", {"on": True})
    make.config(tenant, "users.timeout", 99, environment=production, service_name="users")
    return entry


@pytest.fixture
def writer(tenant, make_key):
    return make_key(tenant=tenant, scopes=["configs:read", "configs:write"], name="writer")


@pytest.fixture
def reader(tenant, make_key):
    return make_key(tenant=tenant, scopes=["configs:read", "events:read"], name="billing-service")


def test_python_client__value_changed_through_api__on_change_and_get_see_it(live_server, billing, writer, reader, tmp_path):
    changes = []
    client = ConfigClient(live_server.url, reader, service="billing", environment="production",
                          cache_dir=str(tmp_path), **FAST)
    client.on_change(lambda key, old, new: changes.append((key, old, new)))
    client.start()
    try:
        assert client.source == "hub"
        assert client.get("billing.timeout") == 30
        assert client.get("feature.x") == {"on": True}
        assert client.get("users.timeout", "absent") == "absent"
        assert client.get("no.such.key", 7) == 7

        _patch_value(live_server.url, writer, billing.pk, 45)

        assert wait_until(lambda: client.get("billing.timeout") == 45, timeout=10)
        assert wait_until(lambda: changes == [("billing.timeout", 30, 45)], timeout=5), changes
        saved = json.loads(open(client.cache_file).read())
        assert {row["key"]: row["value"] for row in saved["configs"]}["billing.timeout"] == 45
    finally:
        client.close()


def test_python_client__started_while_hub_down__answers_last_known_good_then_catches_up(
        live_server, billing, writer, reader, tmp_path):
    host, port = urlsplit(live_server.url).hostname, urlsplit(live_server.url).port
    proxy = Proxy(host, port).start()
    try:
        first = ConfigClient(proxy.url, reader, service="billing", environment="production", cache_dir=str(tmp_path), **FAST)
        first.start()
        assert first.get("billing.timeout") == 30
        first.close()

        proxy.stop()  # the hub is down for the service...
        _patch_value(live_server.url, writer, billing.pk, 60)  # ...and changes meanwhile
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{proxy.url}/health", timeout=2)

        changes = []
        second = ConfigClient(proxy.url, reader, service="billing", environment="production", cache_dir=str(tmp_path), **FAST)
        second.on_change(lambda key, old, new: changes.append((key, old, new)))
        started = time.monotonic()
        second.start()
        try:
            assert time.monotonic() - started < 5
            assert second.source == "cache"
            assert second.get("billing.timeout") == 30  # the last-known-good value
            assert second.get("feature.x") == {"on": True}

            proxy.start()  # the hub is back on the same address

            assert wait_until(lambda: second.get("billing.timeout") == 60, timeout=10)
            assert second.source == "hub"
            assert wait_until(lambda: changes == [("billing.timeout", 30, 60)], timeout=5), changes
            _patch_value(live_server.url, writer, billing.pk, 61)  # and it follows changes again
            assert wait_until(lambda: second.get("billing.timeout") == 61, timeout=10)
        finally:
            second.close()
    finally:
        proxy.stop()


def test_python_client__default_stream_answered_once_by_a_wsgi_server__still_follows_changes(
        live_server, billing, writer, reader, tmp_path):
    # live_server is a WSGI server: the stream answers once (retry: 1 s), as under runserver.
    client = ConfigClient(live_server.url, reader, service="billing", environment="production",
                          cache_dir=str(tmp_path), **dict(FAST, transport="stream")).start()
    try:
        _patch_value(live_server.url, writer, billing.pk, 46)
        assert wait_until(lambda: client.get("billing.timeout") == 46, timeout=10)
        assert client.transport == "stream"
    finally:
        client.close()


def test_python_client__hub_down_and_no_copy__defaults_until_hub_is_back(live_server, billing, reader, tmp_path):
    host, port = urlsplit(live_server.url).hostname, urlsplit(live_server.url).port
    proxy = Proxy(host, port).start()
    proxy.stop()
    client = ConfigClient(proxy.url, reader, service="billing", environment="production", cache_dir=str(tmp_path), **FAST)
    client.start()
    try:
        assert client.source is None
        assert client.get("billing.timeout", "default") == "default"
        proxy.start()
        assert wait_until(lambda: client.get("billing.timeout") == 30, timeout=10)
        assert client.source == "hub"
    finally:
        client.close()
        proxy.stop()


def test_python_client__secrets_in_the_copy__only_as_the_hub_returned_them_and_file_owner_only(
        live_server, tenant, environments, make_key, tmp_path):
    make.secret(tenant, "billing.db_password", "hunter2", service_name="billing")
    masked_key = make_key(tenant=tenant, scopes=["configs:read"], name="no-secrets")
    secret_key = make_key(tenant=tenant, scopes=["configs:read", "secrets:read"], name="with-secrets")

    masked = ConfigClient(live_server.url, masked_key, service="billing", environment="production",
                          cache_dir=str(tmp_path / "masked"), **dict(FAST, transport="poll")).start()
    revealed = ConfigClient(live_server.url, secret_key, service="billing", environment="production",
                            cache_dir=str(tmp_path / "revealed"), **dict(FAST, transport="poll")).start()
    masked.close()
    revealed.close()

    assert masked.get("billing.db_password", "unknown") == "unknown"
    assert revealed.get("billing.db_password") == "hunter2"
    masked_text, revealed_text = open(masked.cache_file).read(), open(revealed.cache_file).read()
    assert "hunter2" not in masked_text
    assert [row for row in json.loads(masked_text)["configs"] if row["key"] == "billing.db_password"][0]["value"] is None
    assert "hunter2" in revealed_text
    for path in (masked.cache_file, revealed.cache_file):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert masked_key not in masked.cache_file and os.path.basename(masked.cache_file).endswith("-billing-production.json")


def test_python_client__key_without_events_read__polls_and_still_sees_changes(live_server, billing, writer, make_key,
                                                                               tenant, tmp_path):
    plain = make_key(tenant=tenant, scopes=["configs:read"], name="no-events")
    client = ConfigClient(live_server.url, plain, service="billing", environment="production", cache_dir=str(tmp_path),
                          poll_interval=0.2, **FAST).start()
    try:
        _patch_value(live_server.url, writer, billing.pk, 75)
        assert wait_until(lambda: client.get("billing.timeout") == 75, timeout=10)
    finally:
        client.close()


def test_python_client__close_during_long_poll__returns_at_once(live_server, billing, reader, tmp_path):
    client = ConfigClient(live_server.url, reader, service="billing", environment="production", cache_dir=str(tmp_path),
                          **dict(FAST, wait=5)).start()
    from events import watch

    assert wait_until(lambda: watch._state["total"] == 1, timeout=5)  # the client's long poll is held
    started = time.monotonic()
    client.close()
    assert time.monotonic() - started < 2
    assert not client._thread.is_alive()


def test_python_client__register_heartbeat_discover_close__instance_lives_then_leaves(live_server, tenant, make_key, tmp_path):
    from registry.heartbeats import heartbeat_flush
    from registry.models import Instance

    key = make_key(tenant=tenant, scopes=["configs:read", "events:read", "registry:read", "registry:write"], name="svc")
    client = ConfigClient(live_server.url, key, service="billing", environment="production", cache_dir=str(tmp_path),
                          heartbeat_interval=0.2, **FAST).start()
    other = ConfigClient(live_server.url, key, service="checkout", environment="production", **FAST)
    try:
        instance_id = client.register("http://127.0.0.1:9411", health_check_url="http://127.0.0.1:9411/health",
                                      metadata={"version": "1.2.3"})
        first_beat = Instance.objects.get(pk=instance_id).last_heartbeat

        assert other.discover("billing") == "http://127.0.0.1:9411"
        assert other.discover("nobody") is None

        def beaten() -> bool:
            heartbeat_flush()
            return Instance.objects.get(pk=instance_id).last_heartbeat > first_beat

        assert wait_until(beaten, timeout=10)
        assert Instance.objects.get(pk=instance_id).metadata == {"version": "1.2.3"}
    finally:
        client.close()
    assert not Instance.objects.filter(pk=instance_id).exists()
