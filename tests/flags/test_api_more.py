"""Flags over HTTP, as a client sees them: evaluate's payload/value/reason for
variant and boolean flags, evaluate-all, OFREP's environment resolution, reasons
and throttling, the seed 001 routes by id, and the admin refusing malformed
strategies and constraints."""
from __future__ import annotations

import pytest

from tests import factories as make

pytestmark = pytest.mark.django_db

CTX = {"userId": "user-1"}


def _flag(tenant, env, name, *, enabled=True, strategies=None, variants=None, kind="boolean", rollout=None):
    return make.flag(tenant, name, environment=env, is_enabled=enabled, strategies=strategies, variants=variants,
                     kind=kind, rollout_percentage=rollout)


def _evaluate(client, name, context=None, environment="production"):
    return client.post("/api/v1/feature-flags/evaluate",
                       {"flag_name": name, "environment": environment, "context": context or CTX}, format="json")


def _variant(name, weight, kind, value):
    return {"name": name, "weight": weight, "stickiness": "default", "payload": {"type": kind, "value": value}}


TARGETED = [{"name": "default", "parameters": {},
             "constraints": [{"contextName": "plan", "operator": "IN", "values": ["pro"]}]}]


# --- POST /api/v1/feature-flags/evaluate ----------------------------------------------------


def test_evaluate__string_variants_split__payload_value_and_split_reason(tenant, environments, make_key, client_for):
    payloads = {"dark": "dark-v2", "light": "light-v1"}
    _flag(tenant, environments["production"], "theme", kind="string",
          variants=[_variant(n, 500, "string", v) for n, v in payloads.items()])
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
    _flag(tenant, prod, "limits", kind="json", variants=[_variant("cfg", 1000, "json", '{"limit": 5, "tags": ["a", "b"]}')])
    _flag(tenant, prod, "ratio", kind="number", variants=[_variant("r", 1000, "number", "2.5")])
    _flag(tenant, prod, "count", kind="number", variants=[_variant("c", 1000, "number", "10")])
    client = client_for(make_key(tenant=tenant, scopes=["flags:read"]))

    limits, ratio, count = (_evaluate(client, n).json() for n in ("limits", "ratio", "count"))

    assert limits["payload"] == {"type": "json", "value": '{"limit": 5, "tags": ["a", "b"]}'}
    assert limits["value"] == {"limit": 5, "tags": ["a", "b"]}
    assert limits["variant"]["name"] == "cfg" and limits["reason"] == "STATIC"
    assert ratio["value"] == 2.5 and ratio["payload"] == {"type": "number", "value": "2.5"}
    assert count["value"] == 10 and isinstance(count["value"], int)


def test_evaluate__boolean_flag_without_variants__value_is_enabled(tenant, environments, make_key, client_for):
    prod = environments["production"]
    _flag(tenant, prod, "on_for_all")
    _flag(tenant, prod, "off_flag", enabled=False)
    _flag(tenant, prod, "pro_only", strategies=TARGETED)
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
    _flag(tenant, environments["production"], "theme_off", enabled=False, kind="string",
          variants=[_variant("dark", 1000, "string", "dark")])
    client = client_for(make_key(tenant=tenant, scopes=["flags:read"]))

    body = _evaluate(client, "theme_off").json()

    assert body["enabled"] is False and body["value"] is False and body["payload"] is None
    assert body["variant"] == {"name": "disabled", "enabled": False, "feature_enabled": False}
    assert body["reason"] == "DISABLED"


# --- evaluate-all ------------------------------------------------------------------------------


def test_evaluate_all__every_flag_of_the_environment__each_with_enabled_variant_reason(
    tenant, other_tenant, environments, make_key, client_for
):
    prod = environments["production"]
    _flag(tenant, prod, "a_on")
    _flag(tenant, prod, "b_off", enabled=False)
    _flag(tenant, prod, "c_variant", kind="string", variants=[_variant("x", 1000, "string", "xx")])
    _flag(tenant, prod, "d_targeted", strategies=TARGETED)
    _flag(tenant, environments["staging"], "e_staging_only")
    _flag(other_tenant, prod, "theirs")
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


# --- OFREP -------------------------------------------------------------------------------------


def _ofrep(client, key, context=None, **headers):
    return client.post(f"/ofrep/v1/evaluate/flags/{key}", {"context": context or {"targetingKey": "user-1"}},
                       format="json", **headers)


@pytest.fixture
def per_env_flag(tenant, environments):
    """'beta': on in production, off in staging, no state in development."""
    from flags.services import flag_update

    flag = _flag(tenant, environments["production"], "beta")
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
    _flag(tenant, prod, "half", rollout=50)
    _flag(tenant, prod, "targeted", strategies=TARGETED)
    _flag(tenant, prod, "off", enabled=False)
    _flag(tenant, prod, "everyone")
    _flag(tenant, prod, "full_rollout", rollout=100)
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
    _flag(tenant, prod, "everyone")
    _flag(tenant, prod, "off", enabled=False)
    _flag(tenant, prod, "theme", kind="string", variants=[_variant("dark", 1000, "string", "dark-v2")])
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
                                                    client_for):
    settings.API_THROTTLE_RATE = "3/min"
    _away_from_window_edge()
    client = client_for(make_key(tenant=tenant, scopes=["flags:read"]))

    codes = [client.post(route, {"context": {"targetingKey": "u"}}, format="json",
                         HTTP_X_ENVIRONMENT="production").status_code for _ in range(4)]
    last = client.post(route, {"context": {"targetingKey": "u"}}, format="json", HTTP_X_ENVIRONMENT="production")

    assert codes == [200, 200, 200, 429]
    assert last.status_code == 429
    assert 1 <= int(last["Retry-After"]) <= 61


def _away_from_window_edge(window: int = 60) -> None:
    """The throttle counts in fixed windows: start well inside one, so a window
    boundary never falls between the requests of a test."""
    import time

    left = window - time.time() % window
    if left < 5:
        time.sleep(left + 0.1)


# --- seed 001 routes by id ---------------------------------------------------------------------


def test_flag_by_id__get_patch_put_rollout_alone_delete_then_evaluate_404(
    tenant, environments, make_key, client_for, django_capture_on_commit_callbacks
):
    client = client_for(make_key(tenant=tenant, scopes=["flags:read", "flags:write"]))
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post("/api/v1/feature-flags/", {
            "name": "new_checkout", "environment": "production", "is_enabled": True, "rollout_percentage": 10.0,
            "description": "the new checkout"}, format="json")
    assert created.status_code == 201, created.content
    flag_id = created.json()["id"]

    got = client.get(f"/api/v1/feature-flags/{flag_id}")
    with django_capture_on_commit_callbacks(execute=True):
        patched = client.patch(f"/api/v1/feature-flags/{flag_id}", {"description": "renamed checkout"}, format="json")
        put = client.put(f"/api/v1/feature-flags/{flag_id}", {"rollout_percentage": 50.0}, format="json")
    after_put = client.get(f"/api/v1/feature-flags/{flag_id}").json()

    assert got.status_code == 200
    assert (got.json()["name"], got.json()["is_enabled"], got.json()["rollout_percentage"]) == ("new_checkout", True, 10.0)
    assert patched.status_code == 200
    assert patched.json()["description"] == "renamed checkout"
    assert patched.json()["rollout_percentage"] == 10.0 and patched.json()["is_enabled"] is True
    assert put.status_code == 200
    # Only the rollout moved: still enabled, same description, same environment.
    assert (after_put["rollout_percentage"], after_put["is_enabled"], after_put["description"], after_put["environment"]) == \
        (50.0, True, "renamed checkout", "production")
    assert after_put["version"] == got.json()["version"] + 2
    # The evaluation follows: about half of the users now (it was about a tenth).
    share = sum(_evaluate(client, "new_checkout", {"userId": f"u{i}"}).json()["enabled"] for i in range(200)) / 200
    assert 0.35 < share < 0.65

    with django_capture_on_commit_callbacks(execute=True):
        deleted = client.delete(f"/api/v1/feature-flags/{flag_id}")
    gone = client.get(f"/api/v1/feature-flags/{flag_id}")
    evaluated = _evaluate(client, "new_checkout")

    assert deleted.status_code == 204
    assert gone.status_code == 404
    assert evaluated.status_code == 404 and evaluated.json()["error"]["code"] == "flag_not_found"


def test_flag_by_id__patch_is_enabled_alone__keeps_the_rollout(tenant, environments, make_key, client_for,
                                                              django_capture_on_commit_callbacks):
    client = client_for(make_key(tenant=tenant, scopes=["flags:read", "flags:write"]))
    created = client.post("/api/v1/feature-flags/", {"name": "f", "environment": "production", "is_enabled": True,
                                                      "rollout_percentage": 30.0}, format="json").json()

    with django_capture_on_commit_callbacks(execute=True):
        r = client.patch(f"/api/v1/feature-flags/{created['id']}", {"is_enabled": False}, format="json")

    assert r.status_code == 200
    assert (r.json()["is_enabled"], r.json()["rollout_percentage"]) == (False, 30.0)
    assert _evaluate(client, "f").json()["reason"] == "DISABLED"


def test_flag_by_id__other_tenants_flag__404_and_unchanged(tenant, other_tenant, environments, make_key, client_for):
    from flags.models import FlagEnvironment

    theirs = _flag(other_tenant, environments["production"], "theirs", rollout=10)
    client = client_for(make_key(tenant=tenant, scopes=["flags:read", "flags:write"]))

    got = client.get(f"/api/v1/feature-flags/{theirs.pk}")
    put = client.put(f"/api/v1/feature-flags/{theirs.pk}", {"rollout_percentage": 90.0}, format="json")
    deleted = client.delete(f"/api/v1/feature-flags/{theirs.pk}")

    assert (got.status_code, put.status_code, deleted.status_code) == (404, 404, 404)
    assert FlagEnvironment.objects.get(flag=theirs).rollout_percentage == 10.0


# --- the admin refuses malformed strategies and constraints ---------------------------------


def _flag_page_post(flag, environments, strategies: str, description="changed by the operator"):
    fe = flag.states.get()
    return {
        "description": description, "kind": "boolean", "default_environment": environments["production"].pk,
        "variants": "[]", "dependencies": "[]",
        "states-TOTAL_FORMS": "1", "states-INITIAL_FORMS": "1", "states-MIN_NUM_FORMS": "0", "states-MAX_NUM_FORMS": "1000",
        "states-0-id": fe.pk, "states-0-flag": flag.pk, "states-0-environment": environments["production"].pk,
        "states-0-enabled": "on", "states-0-strategies": strategies,
    }


@pytest.mark.parametrize("strategies, message", [
    ('[{"name": "flexibleRollout", "parameters": {"rollout": "lots"}}]', "rollout"),
    ('[{"name": "default", "constraints": [{"contextName": "userId", "operator": "IS_ONE_OF", "values": ["1"]}]}]',
     "unknown operator"),
    ('[{"name": "default", "constraints": [{"operator": "IN", "values": ["1"]}]}]', "contextName"),
    ('[{"name": "default", "constraints": [{"contextName": "segment", "operator": "NOPE", "values": ["1"]}]}]',
     "unknown operator"),
    ('[{"name": "default", "segments": "vip"}]', "segments must be a list"),
    ('[{"name": "default", "segments": [987654]}]', "987654"),
    ('{"name": "default"}', "list"),
])
def test_admin_flag_page__malformed_strategy_or_constraint__form_error_nothing_saved(
    strategies, message, tenant, environments, admin_user, client
):
    from flags.models import Flag, FlagEnvironment

    flag = _flag(tenant, environments["production"], "guarded", rollout=20)
    before = FlagEnvironment.objects.get(flag=flag)
    client.force_login(admin_user)

    r = client.post(f"/admin/flags/flag/{flag.pk}/change/", _flag_page_post(flag, environments, strategies))

    assert r.status_code == 200, "the page must be shown again with the error, not saved"
    inline_errors = r.context["inline_admin_formsets"][0].formset.errors
    text = " ".join(str(e) for e in inline_errors)
    assert "strategies" in inline_errors[0] and message in text, inline_errors
    after = FlagEnvironment.objects.get(flag=flag)
    assert (after.strategies, after.version, after.enabled) == (before.strategies, before.version, before.enabled)
    assert Flag.objects.get(pk=flag.pk).description == ""


def test_admin_flag_page__strategy_naming_the_tenants_segment__saved(tenant, environments, admin_user, client,
                                                                    django_capture_on_commit_callbacks):
    from flags.models import Flag, FlagEnvironment

    seg = make.segment(tenant, "vip", [{"contextName": "plan", "operator": "IN", "values": ["pro"]}])
    flag = _flag(tenant, environments["production"], "guarded", rollout=20)
    client.force_login(admin_user)
    strategies = f'[{{"name": "default", "parameters": {{}}, "constraints": [], "segments": [{seg.pk}]}}]'

    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(f"/admin/flags/flag/{flag.pk}/change/", _flag_page_post(flag, environments, strategies))

    assert r.status_code == 302
    assert FlagEnvironment.objects.get(flag=flag).strategies[0]["segments"] == [seg.pk]
    assert Flag.objects.get(pk=flag.pk).description == "changed by the operator"


def test_evaluate_all__context_with_an_integer_beyond_64_bits__answers(tenant, environments, make_key, client_for):
    make.flag(tenant, "beta", environment=environments["production"], is_enabled=True)
    client = client_for(make_key(tenant=tenant, scopes=["flags:read"], name="bigctx"))

    r = client.post("/api/v1/feature-flags/evaluate-all",
                    {"environment": "production", "context": {"userId": "u1", "properties": {"n": 2 ** 70}}}, format="json")

    assert r.status_code == 200
    assert r.json()["flags"]["beta"]["enabled"] is True
