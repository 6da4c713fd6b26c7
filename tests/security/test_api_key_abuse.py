"""Unknown API keys: bounded memory, no query for a malformed key, a failure throttle per address.

Every unknown ``ApiKey chk_…`` used to cost a database query, was never
throttled, and left an entry in a per-process dict that nothing evicted (about
20 MB per 43,000 requests).
"""
from __future__ import annotations

import secrets

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.cache import LocalCache
from tests import factories as make
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db

# A push-invalidated cache with a small bound (registered for the life of the process).
_bounded = LocalCache("probe-bound:", push=True, max_items=50)


def unknown_key() -> str:
    """A key of the shape api_key_create hands out, that no row holds."""
    return f"chk_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"


def key_queries(ctx) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries if "tenants_apikey" in q["sql"]]


def _listener_connected() -> bool:
    from core import invalidation

    return wait_until(invalidation.connected, timeout=10, step=0.05)


def test_unknown_keys__5000_distinct__per_process_cache_stays_bounded(settings, tenant, make_key, client_for):
    from tenants.credentials import _api_keys

    settings.API_AUTH_FAILURE_RATE = "off"
    valid = client_for(make_key(tenant=tenant, scopes=["configs:read"]))
    assert valid.get("/api/v1/configs/").status_code == 200
    assert _listener_connected()  # local values are kept only while it is
    assert valid.get("/api/v1/configs/").status_code == 200
    before = len(_api_keys)

    codes = {client_for(unknown_key()).get("/api/v1/configs/").status_code for _ in range(5000)}

    assert codes == {401}
    assert before >= 1  # the valid key is kept locally
    assert len(_api_keys) == before


def test_local_invalidation_cache__more_names_than_its_bound__oldest_dropped(settings):
    _bounded.get_or_load("probe-bound:warm", lambda: 1)
    assert _listener_connected()

    for i in range(120):
        _bounded.get_or_load(f"probe-bound:{i}", lambda i=i: i)

    assert len(_bounded) == 50
    assert _bounded.get("probe-bound:119") == 119
    assert "probe-bound:0" not in _bounded


@pytest.mark.parametrize("header", [
    "ApiKey chk_deadbeef_short",
    "ApiKey chk_00000000_" + "!" * 43,
    "ApiKey chk_" + "x" * 5000,
    "Bearer chk_DEADBEEF_" + "a" * 43,
])
def test_malformed_key__refused_401_without_a_database_query(header, tenant, client_for):
    client = client_for(HTTP_AUTHORIZATION=header)

    with CaptureQueriesContext(connection) as ctx:
        r = client.get("/api/v1/configs/")

    assert r.status_code == 401
    assert r.json()["error"]["code"] == "not_authenticated"
    assert key_queries(ctx) == []


def test_unknown_keys__past_the_failure_rate__429_with_retry_after_and_no_query(settings, tenant, make_key, client_for):
    settings.API_AUTH_FAILURE_RATE = "5/min"
    valid_key = make_key(tenant=tenant, scopes=["configs:read"])

    first = [client_for(unknown_key()).get("/api/v1/configs/").status_code for _ in range(5)]
    with CaptureQueriesContext(connection) as ctx:
        over = client_for(unknown_key()).get("/api/v1/configs/")
    malformed = client_for("chk_nope").get("/api/v1/configs/")
    elsewhere = client_for(valid_key, REMOTE_ADDR="192.0.2.10").get("/api/v1/configs/")
    known_here = client_for(valid_key).get("/api/v1/configs/")

    assert first == [401] * 5
    assert over.status_code == 429
    assert over.json()["error"]["code"] == "throttled"
    assert over.json()["error"]["message"].startswith("Too many failed authentications from this address")
    assert 1 <= int(over["Retry-After"]) <= 61
    assert key_queries(ctx) == []
    assert malformed.status_code == 429
    assert elsewhere.status_code == 200  # another address: its own budget
    assert known_here.status_code == 200  # a key the hub holds in its cache keeps working


def test_unknown_keys__lean_evaluate_route__counted_once_per_request(settings, tenant, environments, make_key, client_for):
    settings.API_AUTH_FAILURE_RATE = "2/min"
    body = {"flag_name": "x", "environment": "production"}

    codes = [client_for(unknown_key()).post("/api/v1/feature-flags/evaluate", body, format="json").status_code
             for _ in range(3)]

    assert codes == [401, 401, 429]


def test_valid_key__lean_evaluate_route__still_served_after_the_first_request(tenant, environments, make_key, client_for):
    make.flag(tenant, "new_ui", environment=environments["production"], is_enabled=True)
    client = client_for(make_key(tenant=tenant, scopes=["flags:read"]))
    body = {"flag_name": "new_ui", "environment": "production"}

    answers = [client.post("/api/v1/feature-flags/evaluate", body, format="json") for _ in range(3)]

    assert [(r.status_code, r.json()["enabled"]) for r in answers] == [(200, True)] * 3


def test_unknown_keys__behind_trusted_proxy__throttled_per_forwarded_client(settings, tenant, make_key, client_for):
    # Given one reverse proxy in front of the hub: every request's REMOTE_ADDR is the proxy's.
    settings.TRUSTED_PROXY_COUNT = 1
    settings.API_AUTH_FAILURE_RATE = "3/min"
    valid_key = make_key(tenant=tenant, scopes=["configs:read"])
    proxy = {"REMOTE_ADDR": "10.0.0.2"}

    # When one client sprays unknown keys (and spoofs an address of its own to the left)
    attacker = [client_for(unknown_key(), HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.7", **proxy)
                .get("/api/v1/configs/").status_code for _ in range(4)]
    # Then the attacker's own address is throttled, not the proxy's: another client still gets in.
    other = client_for(valid_key, HTTP_X_FORWARDED_FOR="203.0.113.8", **proxy).get("/api/v1/configs/")

    assert attacker == [401, 401, 401, 429]
    assert other.status_code == 200
