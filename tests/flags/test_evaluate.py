"""POST /api/v1/feature-flags/evaluate and /evaluate-all as a client sees them: enabled,
variant, payload, value and reason for boolean and variant flags; unknown flags,
missing environments, other tenants' flags and keys without the flags scope."""
from __future__ import annotations

import pytest

from tests import factories as make

pytestmark = pytest.mark.django_db


CTX = {"userId": "user-1"}

TARGETED = [{"name": "default", "parameters": {},
             "constraints": [{"contextName": "plan", "operator": "IN", "values": ["pro"]}]}]

def _evaluate(client, name, context=None, environment="production"):
    return client.post("/api/v1/feature-flags/evaluate",
                       {"flag_name": name, "environment": environment, "context": context or CTX}, format="json")

# --- POST /api/v1/feature-flags/evaluate ----------------------------------------------------

def test_evaluate__string_variants_split__payload_value_and_split_reason(tenant, environments, make_key, client_for):
    payloads = {"dark": "dark-v2", "light": "light-v1"}
    make.flag(tenant, "theme", environment=environments["production"], is_enabled=True, kind="string",
              variants=[make.variant(n, 500, "string", v) for n, v in payloads.items()])
    client = client_for(make_key(tenant=tenant, scopes=["flags:read"]))

    answers = [_evaluate(client, "theme", {"userId": f"user-{i}"}) for i in range(40)]

    assert all(a.status_code == 200 for a in answers)
    bodies = [a.json() for a in answers]
    for body in bodies:
        name = body["variant"]["name"]
        assert body["enabled"] is True and body["variant"]["enabled"] is True
        assert body["payload"] == {"type": "string", "value": payloads[name]}
        assert body["value"] == payloads[name]
        assert body["reason"] == "SPLIT"
    assert {b["variant"]["name"] for b in bodies} == {"dark", "light"}  # 40 users land in both halves
    # Sticky: the same user gets the same variant again.
    assert _evaluate(client, "theme", {"userId": "user-7"}).json()["variant"]["name"] == bodies[7]["variant"]["name"]

def test_evaluate__json_and_number_payloads__value_parsed_in_its_type(tenant, environments, make_key, client_for):
    prod = environments["production"]
    make.flag(tenant, "limits", environment=prod, is_enabled=True, kind="json",
              variants=[make.variant("cfg", 1000, "json", '{"limit": 5, "tags": ["a", "b"]}')])
    make.flag(tenant, "ratio", environment=prod, is_enabled=True, kind="number",
              variants=[make.variant("r", 1000, "number", "2.5")])
    make.flag(tenant, "count", environment=prod, is_enabled=True, kind="number",
              variants=[make.variant("c", 1000, "number", "10")])
    client = client_for(make_key(tenant=tenant, scopes=["flags:read"]))

    limits, ratio, count = (_evaluate(client, n).json() for n in ("limits", "ratio", "count"))

    assert limits["payload"] == {"type": "json", "value": '{"limit": 5, "tags": ["a", "b"]}'}
    assert limits["value"] == {"limit": 5, "tags": ["a", "b"]}
    assert limits["variant"]["name"] == "cfg" and limits["reason"] == "STATIC"
    assert ratio["value"] == 2.5 and ratio["payload"] == {"type": "number", "value": "2.5"}
    assert count["value"] == 10 and isinstance(count["value"], int)

def test_evaluate__boolean_flag_without_variants__value_is_enabled(tenant, environments, make_key, client_for):
    prod = environments["production"]
    make.flag(tenant, "on_for_all", environment=prod, is_enabled=True)
    make.flag(tenant, "off_flag", environment=prod, is_enabled=False)
    make.flag(tenant, "pro_only", environment=prod, is_enabled=True, strategies=TARGETED)
    client = client_for(make_key(tenant=tenant, scopes=["flags:read"]))

    on = _evaluate(client, "on_for_all").json()
    off = _evaluate(client, "off_flag").json()
    pro = _evaluate(client, "pro_only", {"userId": "u", "properties": {"plan": "pro"}}).json()
    free = _evaluate(client, "pro_only", {"userId": "u", "properties": {"plan": "free"}}).json()

    assert (on["enabled"], on["value"], on["payload"], on["reason"]) == (True, True, None, "STATIC")
    assert on["variant"]["name"] == "disabled" and on["variant"]["enabled"] is False
    assert (off["enabled"], off["value"], off["payload"], off["reason"]) == (False, False, None, "DISABLED")
    assert (pro["enabled"], pro["value"], pro["reason"]) == (True, True, "TARGETING_MATCH")
    assert (free["enabled"], free["value"], free["reason"]) == (False, False, "DEFAULT")

def test_evaluate__disabled_flag_with_variants__no_payload_value_false(tenant, environments, make_key, client_for):
    make.flag(tenant, "theme_off", environment=environments["production"], is_enabled=False, kind="string",
              variants=[make.variant("dark", 1000, "string", "dark")])
    client = client_for(make_key(tenant=tenant, scopes=["flags:read"]))

    body = _evaluate(client, "theme_off").json()

    assert body["enabled"] is False and body["value"] is False and body["payload"] is None
    assert body["variant"] == {"name": "disabled", "enabled": False, "feature_enabled": False}
    assert body["reason"] == "DISABLED"

def test_evaluate__unknown_flag__404_with_json_error(tenant, environments, make_key, client_for):
    client = client_for(make_key(tenant=tenant, scopes=["flags:read"]))

    r = client.post("/api/v1/feature-flags/evaluate", {"flag_name": "nope", "environment": "production"}, format="json")

    assert r.status_code == 404
    assert r.json()["error"]["code"] == "flag_not_found"

def test_evaluate__no_environment_anywhere__400_saying_so(tenant, environments, make_key, client_for):
    client = client_for(make_key(tenant=tenant, scopes=["flags:read"]))

    r = client.post("/api/v1/feature-flags/evaluate", {"flag_name": "x"}, format="json")

    assert r.status_code == 400
    assert "environment" in r.json()["error"]["message"]

def test_evaluate__other_tenant_flag__not_found(tenant, other_tenant, environments, make_key, client_for):
    make.flag(tenant, "secret_feature", environment=environments["production"], is_enabled=True)
    client = client_for(make_key(tenant=other_tenant, scopes=["flags:read"]))

    r = client.post("/api/v1/feature-flags/evaluate", {"flag_name": "secret_feature", "environment": "production"}, format="json")

    assert r.status_code == 404

@pytest.mark.parametrize("scopes", [["configs:read"], ["registry:read"]])
def test_evaluate__key_without_flags_scope__403(tenant, environments, make_key, client_for, scopes):
    client = client_for(make_key(tenant=tenant, scopes=scopes))

    r = client.post("/api/v1/feature-flags/evaluate", {"flag_name": "x", "environment": "production"}, format="json")

    assert r.status_code == 403

# --- evaluate-all ------------------------------------------------------------------------------

def test_evaluate_all__every_flag_of_the_environment__each_with_enabled_variant_reason(
    tenant, other_tenant, environments, make_key, client_for
):
    prod = environments["production"]
    make.flag(tenant, "a_on", environment=prod, is_enabled=True)
    make.flag(tenant, "b_off", environment=prod, is_enabled=False)
    make.flag(tenant, "c_variant", environment=prod, is_enabled=True, kind="string",
              variants=[make.variant("x", 1000, "string", "xx")])
    make.flag(tenant, "d_targeted", environment=prod, is_enabled=True, strategies=TARGETED)
    make.flag(tenant, "e_staging_only", environment=environments["staging"], is_enabled=True)
    make.flag(other_tenant, "theirs", environment=prod, is_enabled=True)
    client = client_for(make_key(tenant=tenant, scopes=["flags:read"]))

    r = client.post("/api/v1/feature-flags/evaluate-all",
                    {"environment": "production", "context": {"userId": "u1", "properties": {"plan": "pro"}}}, format="json")

    assert r.status_code == 200, r.content
    flags = r.json()["flags"]
    assert r.json()["environment"] == "production"
    assert set(flags) == {"a_on", "b_off", "c_variant", "d_targeted", "e_staging_only"}
    for body in flags.values():
        assert {"enabled", "variant", "reason", "value", "payload"} <= set(body)
    assert (flags["a_on"]["enabled"], flags["a_on"]["reason"]) == (True, "STATIC")
    assert (flags["b_off"]["enabled"], flags["b_off"]["reason"], flags["b_off"]["value"]) == (False, "DISABLED", False)
    assert flags["c_variant"]["variant"]["name"] == "x" and flags["c_variant"]["value"] == "xx"
    assert (flags["d_targeted"]["enabled"], flags["d_targeted"]["reason"]) == (True, "TARGETING_MATCH")
    # No state in production: the flag exists but is off there.
    assert (flags["e_staging_only"]["enabled"], flags["e_staging_only"]["reason"]) == (False, "DISABLED")

def test_evaluate_all__context_with_an_integer_beyond_64_bits__answers(tenant, environments, make_key, client_for):
    make.flag(tenant, "beta", environment=environments["production"], is_enabled=True)
    client = client_for(make_key(tenant=tenant, scopes=["flags:read"], name="bigctx"))

    r = client.post("/api/v1/feature-flags/evaluate-all",
                    {"environment": "production", "context": {"userId": "u1", "properties": {"n": 2 ** 70}}}, format="json")

    assert r.status_code == 200
    assert r.json()["flags"]["beta"]["enabled"] is True
