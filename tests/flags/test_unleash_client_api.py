"""The Unleash client API (``/unleash/{environment}/api/client/...``) with the real,
unchanged ``UnleashClient`` package against a live hub: the SDK evaluates the
hub's flags locally and gives the hub's own answers, follows changes, reports
its evaluations into the hub's usage counters; and the bad input."""
from __future__ import annotations

import logging

import pytest
import requests
from UnleashClient import UnleashClient

from flags.models import FlagEnvironment
from flags.usage import usage_flush
from tests import factories as make
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

USERS = [f"user-{i}" for i in range(40)]
PLANS = ["pro", "free"]


@pytest.fixture
def sdk(live_server, tmp_path):
    """``sdk(key)`` → an initialized UnleashClient configured as API.md says: its URL
    and an Authorization header holding the bare key, nothing else (short intervals
    only so the test need not wait)."""
    clients = []

    def start(key: str, *, environment: str = "production", app_name: str = "t") -> UnleashClient:
        client = UnleashClient(
            url=f"{live_server.url}/unleash/{environment}/api", app_name=app_name, environment=environment,
            custom_headers={"Authorization": key}, disable_metrics=False, refresh_interval=1,
            metrics_interval=60, cache_directory=str(tmp_path / f"cache-{len(clients)}"),
        )
        client.initialize_client()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.destroy()


@pytest.fixture
def sdk_warnings(caplog):
    """The UnleashClient's warnings: it logs one for any answer it did not expect
    (a refused register, metrics or features call)."""
    caplog.set_level(logging.WARNING, logger="UnleashClient")
    return lambda: [r.getMessage() for r in caplog.records if r.name.startswith("UnleashClient") and r.levelno >= logging.WARNING]


@pytest.fixture
def hub_flags(tenant, environments):
    env = environments["production"]
    pro = make.segment(tenant, "pro-users", [{"contextName": "plan", "operator": "IN", "values": ["pro"]}])
    make.flag(tenant, "dark-mode", environment=env, is_enabled=True)
    make.flag(tenant, "switched-off", environment=env, is_enabled=False)
    make.flag(tenant, "checkout-v2", environment=env, is_enabled=True, rollout_percentage=30)
    make.flag(tenant, "pro-only", environment=env, is_enabled=True, strategies=[
        {"name": "default", "parameters": {}, "constraints": [], "segments": [pro.pk]},
    ])
    make.flag(tenant, "listed-users", environment=env, is_enabled=True, strategies=[
        {"name": "default", "parameters": {},
         "constraints": [{"contextName": "userId", "operator": "IN", "values": ["user-3", "user-7"]}]},
    ])
    make.flag(tenant, "banner", environment=env, is_enabled=True, kind="string", variants=[
        make.variant("blue", 50, "string", "Blue!"), make.variant("green", 50, "string", "Green!"),
    ])
    make.flag(tenant, "limits", environment=env, is_enabled=True, kind="json", strategies=[
        {"name": "flexibleRollout", "parameters": {"rollout": "60", "stickiness": "default", "groupId": "limits"},
         "constraints": [], "variants": [{"name": "big", "weight": 1000, "stickiness": "default",
                                          "payload": {"type": "json", "value": '{"max": 10}'}}]},
    ])
    return ["dark-mode", "switched-off", "checkout-v2", "pro-only", "listed-users", "banner", "limits"]


def _hub_answer(live_server, key: str, flag: str, ctx: dict) -> dict:
    r = requests.post(f"{live_server.url}/api/v1/feature-flags/evaluate", timeout=10, headers={"Authorization": f"ApiKey {key}"},
                      json={"flag_name": flag, "environment": "production", "context": ctx})
    assert r.status_code == 200, r.text
    return r.json()


def test_unleash_sdk__hub_flags__same_answers_as_hub_evaluate(live_server, tenant, hub_flags, make_key, sdk, sdk_warnings):
    key = make_key(tenant=tenant, scopes=["flags:read"])
    client = sdk(key)

    compared = 0
    enabled_seen = set()
    for i, user in enumerate(USERS):
        ctx = {"userId": user, "properties": {"plan": PLANS[i % 2]}}
        for flag in hub_flags:
            hub = _hub_answer(live_server, key, flag, ctx)
            variant = client.get_variant(flag, ctx)
            assert client.is_enabled(flag, ctx) is hub["enabled"], (flag, user)
            assert (variant["name"], variant["enabled"], variant.get("payload")) == (
                hub["variant"]["name"], hub["variant"]["enabled"], hub["variant"].get("payload")), (flag, user)
            compared += 1
            if hub["enabled"]:
                enabled_seen.add((flag, variant["name"]))

    assert compared == len(USERS) * len(hub_flags)
    # The comparison covered every kind of answer: on, off, partial, segment, constraint, variants.
    assert {f for f, _ in enabled_seen} == {"dark-mode", "checkout-v2", "pro-only", "listed-users", "banner", "limits"}
    assert {("banner", "blue"), ("banner", "green"), ("limits", "big")} <= enabled_seen
    assert client.is_enabled("no-such-flag", {"userId": "user-1"}) is False
    assert sdk_warnings() == []


def test_unleash_sdk__flag_changed_in_hub__reaches_sdk_after_refresh(live_server, tenant, environments, make_key, sdk, sdk_warnings):
    flag = make.flag(tenant, "dark-mode", environment=environments["production"], is_enabled=True)
    key = make_key(tenant=tenant, scopes=["flags:read"])
    writer = make_key(tenant=tenant, scopes=["flags:read", "flags:write"])
    client = sdk(key)
    assert client.is_enabled("dark-mode", {"userId": "u1"}) is True

    r = requests.put(f"{live_server.url}/api/v1/feature-flags/{flag.pk}", json={"is_enabled": False}, timeout=10,
                     headers={"Authorization": f"ApiKey {writer}"})

    assert r.status_code == 200, r.text
    assert wait_until(lambda: client.is_enabled("dark-mode", {"userId": "u1"}) is False, timeout=15)
    assert sdk_warnings() == []


def test_unleash_sdk__evaluations__reach_hub_usage_counters(live_server, tenant, environments, make_key, sdk, sdk_warnings):
    make.flag(tenant, "counted", environment=environments["production"], is_enabled=True, rollout_percentage=50)
    key = make_key(tenant=tenant, scopes=["flags:read"])
    client = sdk(key)
    for i in range(7):
        client.is_enabled("counted", {"userId": f"user-{i}"})
    client.is_enabled("not-a-hub-flag", {"userId": "user-1"})

    client.destroy()  # sends what it counted (as at every metrics interval)

    def counted() -> int:
        usage_flush()
        return FlagEnvironment.objects.get(flag__name="counted", environment__slug="production").evaluation_count

    assert wait_until(lambda: counted() == 7, timeout=10)
    assert sdk_warnings() == []


def test_unleash_features__if_none_match__304_until_a_change(live_server, tenant, environments, make_key):
    flag = make.flag(tenant, "dark-mode", environment=environments["production"], is_enabled=True)
    key = make_key(tenant=tenant, scopes=["flags:read"])
    url = f"{live_server.url}/unleash/production/api/client/features"

    first = requests.get(url, headers={"Authorization": key}, timeout=10)
    again = requests.get(url, headers={"Authorization": key, "If-None-Match": first.headers["ETag"]}, timeout=10)
    make.flag(tenant, "second", environment=environments["production"], is_enabled=False)
    changed = requests.get(url, headers={"Authorization": key, "If-None-Match": first.headers["ETag"]}, timeout=10)

    assert first.status_code == 200
    body = first.json()
    assert body["version"] == 2
    assert body["segments"] == []
    assert [(f["name"], f["enabled"], f["strategies"]) for f in body["features"]] == [("dark-mode", True, [])]
    assert (again.status_code, again.content, again.headers["ETag"]) == (304, b"", first.headers["ETag"])
    assert changed.status_code == 200
    assert changed.headers["ETag"] != first.headers["ETag"]
    assert [f["name"] for f in changed.json()["features"]] == ["dark-mode", "second"]
    assert flag.pk  # the first flag is still there


def test_unleash_features__other_environment_and_tenant__only_theirs(client, tenant, other_tenant, environments, make_key):
    make.flag(tenant, "prod-on", environment=environments["production"], is_enabled=True)
    make.flag(other_tenant, "globex-flag", environment=environments["production"], is_enabled=True)
    key = make_key(tenant=tenant, scopes=["flags:read"])
    platform = make_key(tenant=None, scopes=["flags:read"])

    staging = client.get("/unleash/staging/api/client/features", HTTP_AUTHORIZATION=key)
    with_scheme = client.get("/unleash/production/api/client/features", HTTP_AUTHORIZATION=f"ApiKey {key}")
    platform_globex = client.get("/unleash/production/api/client/features", HTTP_AUTHORIZATION=platform,
                                 HTTP_X_TENANT_ID="globex")

    assert [(f["name"], f["enabled"]) for f in staging.json()["features"]] == [("prod-on", False)]
    assert [(f["name"], f["enabled"]) for f in with_scheme.json()["features"]] == [("prod-on", True)]
    assert [f["name"] for f in platform_globex.json()["features"]] == ["globex-flag"]


def test_unleash_register__sdk_body__202(client, tenant, environments, make_key):
    key = make_key(tenant=tenant, scopes=["flags:read"])
    body = {"appName": "checkout", "instanceId": "pod-1", "connectionId": "c-1", "sdkVersion": "unleash-python-sdk:6.9.1",
            "strategies": ["default", "flexibleRollout"], "started": "2026-01-01T00:00:00+00:00", "interval": 60,
            "platformName": "CPython", "platformVersion": "3.11", "yggdrasilVersion": "0.17", "specVersion": "6.1.0"}

    r = client.post("/unleash/production/api/client/register", body, content_type="application/json", HTTP_AUTHORIZATION=key)

    assert r.status_code == 202


def test_unleash_client_api__no_key__401_json(client, environments):
    r = client.get("/unleash/production/api/client/features")

    assert r.status_code == 401
    assert r.json()["error"]["code"] == "not_authenticated"


def test_unleash_client_api__key_without_flags_read__403(client, tenant, environments, make_key):
    key = make_key(tenant=tenant, scopes=["configs:read"])

    features = client.get("/unleash/production/api/client/features", HTTP_AUTHORIZATION=key)
    metrics = client.post("/unleash/production/api/client/metrics", {}, content_type="application/json", HTTP_AUTHORIZATION=key)

    assert (features.status_code, features.json()["error"]["code"]) == (403, "permission_denied")
    assert (metrics.status_code, metrics.json()["error"]["code"]) == (403, "permission_denied")


def test_unleash_client_api__unknown_environment__404_json(client, tenant, environments, make_key):
    key = make_key(tenant=tenant, scopes=["flags:read"])

    r = client.get("/unleash/nowhere/api/client/features", HTTP_AUTHORIZATION=key)

    assert r.status_code == 404
    assert r.json()["error"] == {"code": "not_found", "message": "environment 'nowhere' not found", "details": None}


@pytest.mark.parametrize("route", ["register", "metrics"])
@pytest.mark.parametrize("body", ["[1, 2]", "\"text\"", "3", "null"])
def test_unleash_client_api__body_not_an_object__400(client, tenant, environments, make_key, route, body):
    key = make_key(tenant=tenant, scopes=["flags:read"])

    r = client.post(f"/unleash/production/api/client/{route}", body, content_type="application/json", HTTP_AUTHORIZATION=key)

    assert r.status_code == 400
    assert r.json()["error"]["message"] == "body must be a JSON object"


@pytest.mark.parametrize(("bucket", "message"), [
    ({"start": "a", "stop": "b", "toggles": {"f": {"yes": -1, "no": 0}}}, "bucket.toggles.f.yes must be a whole number from 0 to 2147483647"),
    ({"start": "a", "stop": "b", "toggles": {"f": {"yes": True, "no": 0}}}, "bucket.toggles.f.yes must be a whole number from 0 to 2147483647"),
    ({"start": "a", "stop": "b", "toggles": {"f": {"yes": 1, "maybe": 2}}}, "unknown field: bucket.toggles.f.maybe"),
    ({"start": "a", "stop": "b", "toggles": ["f"]}, "bucket.toggles must be a JSON object"),
    ({"start": "a", "stop": "b", "toggles": {}, "extra": 1}, "unknown field: bucket.extra"),
    (None, "bucket is required (an object)"),
])
def test_unleash_metrics__bad_bucket__400_nothing_counted(client, tenant, environments, make_key, bucket, message):
    make.flag(tenant, "f", environment=environments["production"], is_enabled=True)
    key = make_key(tenant=tenant, scopes=["flags:read"])
    body = {"appName": "t"} if bucket is None else {"appName": "t", "bucket": bucket}

    r = client.post("/unleash/production/api/client/metrics", body, content_type="application/json", HTTP_AUTHORIZATION=key)
    usage_flush()

    assert r.status_code == 400
    assert r.json()["error"]["message"] == message
    assert FlagEnvironment.objects.get(flag__name="f").evaluation_count == 0


def test_unleash_metrics__unknown_top_level_field__400(client, tenant, environments, make_key):
    key = make_key(tenant=tenant, scopes=["flags:read"])
    body = {"appName": "t", "bucket": {"start": "a", "stop": "b", "toggles": {}}, "secretSauce": 1}

    r = client.post("/unleash/production/api/client/metrics", body, content_type="application/json", HTTP_AUTHORIZATION=key)

    assert (r.status_code, r.json()["error"]["code"]) == (400, "unknown_fields")


def test_bare_key__outside_the_unleash_routes__401(client, tenant, environments, make_key):
    key = make_key(tenant=tenant, scopes=["flags:read"])

    r = client.post("/ofrep/v1/evaluate/flags", {"context": {}}, content_type="application/json", HTTP_AUTHORIZATION=key)

    assert r.status_code == 401
