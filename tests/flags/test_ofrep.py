"""OFREP over HTTP: the environment from header, context or key; reasons; the bulk
route; INVALID_CONTEXT and FLAG_NOT_FOUND; throttling."""
from __future__ import annotations

import pytest

from tests import factories as make

from .test_evaluate import TARGETED

pytestmark = pytest.mark.django_db


def _ofrep(client, key, context=None, **headers):
    return client.post(f"/ofrep/v1/evaluate/flags/{key}", {"context": context or {"targetingKey": "user-1"}},
                       format="json", **headers)

@pytest.fixture
def per_env_flag(tenant, environments):
    """'beta': on in production, off in staging, no state in development."""
    from flags.services.flags import flag_update

    flag = make.flag(tenant, "beta", environment=environments["production"], is_enabled=True)
    flag_update(flag=flag, environment=environments["staging"], is_enabled=False, actor="test")
    return flag

def test_ofrep__environment_from_header_then_context_then_key(tenant, environments, per_env_flag, make_key, client_for):
    plain = client_for(make_key(tenant=tenant, scopes=["flags:read"], name="no-env"))
    staging_key = client_for(make_key(tenant=tenant, scopes=["flags:read"], name="staging-key",
                                      environment=environments["staging"]))
    prod_key = client_for(make_key(tenant=tenant, scopes=["flags:read"], name="prod-key",
                                   environment=environments["production"]))

    header = _ofrep(plain, "beta", HTTP_X_ENVIRONMENT="production").json()
    header_over_context = _ofrep(plain, "beta", {"targetingKey": "u", "environment": "staging"},
                                 HTTP_X_ENVIRONMENT="production").json()
    context_only = _ofrep(plain, "beta", {"targetingKey": "u", "environment": "staging"}).json()
    context_over_key = _ofrep(staging_key, "beta", {"targetingKey": "u", "environment": "production"}).json()
    key_only_staging = _ofrep(staging_key, "beta").json()
    key_only_prod = _ofrep(prod_key, "beta").json()

    assert (header["value"], header["reason"]) == (True, "STATIC")
    assert header_over_context["value"] is True
    assert (context_only["value"], context_only["reason"]) == (False, "DISABLED")
    assert context_over_key["value"] is True
    assert (key_only_staging["value"], key_only_staging["reason"]) == (False, "DISABLED")
    assert (key_only_prod["value"], key_only_prod["reason"]) == (True, "STATIC")

@pytest.mark.parametrize("route", ["/ofrep/v1/evaluate/flags/beta", "/ofrep/v1/evaluate/flags"])
def test_ofrep__no_environment_anywhere__400_invalid_context_saying_so(route, tenant, environments, per_env_flag,
                                                                      make_key, client_for):
    client = client_for(make_key(tenant=tenant, scopes=["flags:read"]))

    r = client.post(route, {"context": {"targetingKey": "u"}}, format="json")

    assert r.status_code == 400
    assert r.json()["errorCode"] == "INVALID_CONTEXT"
    assert "environment" in r.json()["errorDetails"].lower()

def test_ofrep__unknown_environment__400_invalid_context(tenant, environments, per_env_flag, make_key, client_for):
    client = client_for(make_key(tenant=tenant, scopes=["flags:read"]))

    r = _ofrep(client, "beta", HTTP_X_ENVIRONMENT="nowhere")

    assert r.status_code == 400 and r.json()["errorCode"] == "INVALID_CONTEXT"
    assert "nowhere" in r.json()["errorDetails"]

def test_ofrep__reasons_over_http__split_targeting_disabled_static_default(tenant, environments, make_key, client_for):
    prod = environments["production"]
    make.flag(tenant, "half", environment=prod, is_enabled=True, rollout_percentage=50)
    make.flag(tenant, "targeted", environment=prod, is_enabled=True, strategies=TARGETED)
    make.flag(tenant, "off", environment=prod, is_enabled=False)
    make.flag(tenant, "everyone", environment=prod, is_enabled=True)
    make.flag(tenant, "full_rollout", environment=prod, is_enabled=True, rollout_percentage=100)
    client = client_for(make_key(tenant=tenant, scopes=["flags:read"], environment=prod))

    half = [_ofrep(client, "half", {"targetingKey": f"user-{i}"}).json() for i in range(40)]
    targeted = _ofrep(client, "targeted", {"targetingKey": "u", "plan": "pro"}).json()
    untargeted = _ofrep(client, "targeted", {"targetingKey": "u", "plan": "free"}).json()
    off = _ofrep(client, "off").json()
    everyone = _ofrep(client, "everyone").json()
    full = _ofrep(client, "full_rollout").json()
    missing = _ofrep(client, "no_such_flag")

    hits = [h for h in half if h["value"] is True]
    assert 0 < len(hits) < 40  # a 50% rollout answers both ways over 40 users
    assert {h["reason"] for h in hits} == {"SPLIT"}
    assert {h["reason"] for h in half if h["value"] is False} == {"DEFAULT"}
    assert (targeted["value"], targeted["reason"]) == (True, "TARGETING_MATCH")
    assert (untargeted["value"], untargeted["reason"]) == (False, "DEFAULT")
    assert (off["value"], off["reason"], off["variant"]) == (False, "DISABLED", None)
    assert (everyone["value"], everyone["reason"], everyone["variant"]) == (True, "STATIC", None)
    assert (full["value"], full["reason"]) == (True, "STATIC")
    assert everyone["key"] == "everyone" and "metadata" in everyone
    assert missing.status_code == 404 and missing.json()["errorCode"] == "FLAG_NOT_FOUND"

def test_ofrep_bulk__every_flag_with_value_variant_reason(tenant, environments, make_key, client_for):
    prod = environments["production"]
    make.flag(tenant, "everyone", environment=prod, is_enabled=True)
    make.flag(tenant, "off", environment=prod, is_enabled=False)
    make.flag(tenant, "theme", environment=prod, is_enabled=True, kind="string",
              variants=[make.variant("dark", 1000, "string", "dark-v2")])
    client = client_for(make_key(tenant=tenant, scopes=["flags:read"]))

    r = client.post("/ofrep/v1/evaluate/flags", {"context": {"targetingKey": "u1"}}, format="json",
                    HTTP_X_ENVIRONMENT="production")

    assert r.status_code == 200 and r["ETag"]
    flags = {f["key"]: f for f in r.json()["flags"]}
    assert set(flags) == {"everyone", "off", "theme"}
    assert (flags["everyone"]["value"], flags["everyone"]["reason"]) == (True, "STATIC")
    assert (flags["off"]["value"], flags["off"]["reason"]) == (False, "DISABLED")
    assert (flags["theme"]["value"], flags["theme"]["variant"]) == ("dark-v2", "dark")

@pytest.mark.parametrize("route", ["/ofrep/v1/evaluate/flags/beta", "/ofrep/v1/evaluate/flags"])
def test_ofrep__over_the_rate__429_with_retry_after(route, settings, tenant, environments, per_env_flag, make_key,
                                                    client_for, clock):
    settings.API_THROTTLE_RATE = "3/min"
    client = client_for(make_key(tenant=tenant, scopes=["flags:read"]))
    clock.advance(15)  # 45 s left in the window

    codes = [client.post(route, {"context": {"targetingKey": "u"}}, format="json",
                         HTTP_X_ENVIRONMENT="production").status_code for _ in range(4)]
    last = client.post(route, {"context": {"targetingKey": "u"}}, format="json", HTTP_X_ENVIRONMENT="production")

    assert codes == [200, 200, 200, 429]
    assert last.status_code == 429
    assert last["Retry-After"] == "46"  # the seconds left in the window, rounded up
