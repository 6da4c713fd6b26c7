"""evaluate-all and OFREP bulk reuse answers per process: never a stale one
after a write, never a frozen random one, and every evaluation still counted."""
from __future__ import annotations

import pytest

from tests import factories as make

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(tenant, environments, make_key, client_for):
    return client_for(make_key(tenant=tenant, scopes=["flags:read"]))


def _all(client, **context):
    r = client.post("/api/v1/feature-flags/evaluate-all", {"environment": "production", "context": context}, format="json")
    assert r.status_code == 200, r.content
    return r


def _bulk(client, **context):
    r = client.post("/ofrep/v1/evaluate/flags", {"context": context}, format="json", HTTP_X_ENVIRONMENT="production")
    assert r.status_code == 200, r.content
    return {f["key"]: f for f in r.json()["flags"]}


def test_evaluate_all__flag_written__next_call_sees_it(tenant, environments, client, django_capture_on_commit_callbacks):
    from flags.selectors import flag_for_tenant
    from flags.services.flags import flag_update

    with django_capture_on_commit_callbacks(execute=True):
        flag = make.flag(tenant, "checkout", environment=environments["production"])
    assert _all(client, userId="u1").json()["flags"]["checkout"]["enabled"] is False
    assert _bulk(client, targetingKey="u1")["checkout"]["value"] is False
    assert _all(client, userId="u1").json()["flags"]["checkout"]["enabled"] is False  # a reused answer

    with django_capture_on_commit_callbacks(execute=True):
        flag_update(flag=flag_for_tenant(tenant_id=tenant.pk, flag_id=flag.pk), environment=environments["production"],
                    is_enabled=True, actor="t")
    assert _all(client, userId="u1").json()["flags"]["checkout"]["enabled"] is True
    assert _bulk(client, targetingKey="u1")["checkout"]["value"] is True

    with django_capture_on_commit_callbacks(execute=True):
        make.flag(tenant, "added", environment=environments["production"], is_enabled=True)
    assert set(_all(client, userId="u1").json()["flags"]) == {"checkout", "added"}


def test_evaluate_all__same_context_twice__same_body_and_etag_304(tenant, environments, client):
    make.flag(tenant, "f", environment=environments["production"], is_enabled=True)
    first, second = _all(client, userId="u1"), _all(client, userId="u1")
    assert first.json() == second.json() and first["ETag"] == second["ETag"]
    r = client.post("/api/v1/feature-flags/evaluate-all", {"environment": "production", "context": {"userId": "u1"}},
                    format="json", HTTP_IF_NONE_MATCH=first["ETag"])
    assert r.status_code == 304
    other = _all(client, userId="u1", properties={"region": "eu"})
    assert other.json()["flags"] == first.json()["flags"]


@pytest.mark.parametrize(
    "strategy, context",
    [
        ({"name": "gradualRolloutRandom", "parameters": {"percentage": "50"}}, {"userId": "u1"}),
        ({"name": "flexibleRollout", "parameters": {"rollout": "50", "stickiness": "random"}}, {"userId": "u1"}),
        # Default stickiness with neither userId nor sessionId falls back to random.
        ({"name": "flexibleRollout", "parameters": {"rollout": "50", "stickiness": "default"}}, {}),
    ],
)
def test_evaluate_all__random_rollout__never_frozen_by_reuse(strategy, context, tenant, environments, client):
    make.flag(tenant, "coin", environment=environments["production"], is_enabled=True, strategies=[strategy])
    make.flag(tenant, "steady", environment=environments["production"], is_enabled=True)
    seen = {_all(client, **context).json()["flags"]["coin"]["enabled"] for _ in range(60)}
    seen_bulk = {_bulk(client, **context)["coin"]["value"] for _ in range(60)}
    assert seen == {True, False} and seen_bulk == {True, False}  # 60 fair coins all alike: 2**-59


def test_evaluate_all__random_variant_stickiness__variant_not_frozen(tenant, environments, client):
    variants = [{"name": "a", "weight": 500, "stickiness": "random"}, {"name": "b", "weight": 500, "stickiness": "random"}]
    make.flag(tenant, "ab", environment=environments["production"], is_enabled=True, variants=variants)
    seen = {_all(client, userId="u1").json()["flags"]["ab"]["variant"]["name"] for _ in range(60)}
    assert seen == {"a", "b"}


def test_evaluate_all_shaped__clock_constraint__reused_only_with_current_time(tenant, environments):
    from flags.selectors import flags_evaluate_all_shaped

    strategy = {"name": "default", "constraints": [
        {"contextName": "currentTime", "operator": "DATE_AFTER", "value": "2020-01-01T00:00:00Z"}]}
    make.flag(tenant, "launch", environment=environments["production"], is_enabled=True, strategies=[strategy])
    shaped = []

    def shape(results, environment):
        shaped.append(results["launch"].enabled)
        return dict(results)

    for _ in range(3):
        flags_evaluate_all_shaped(tenant=tenant, environment="production", context={"userId": "u"}, shape=shape)
    assert shaped == [True, True, True]  # "now" each time: evaluated afresh
    for _ in range(3):
        flags_evaluate_all_shaped(tenant=tenant, environment="production",
                                  context={"userId": "u", "currentTime": "2019-06-01T00:00:00Z"}, shape=shape)
    assert shaped == [True, True, True, False]  # a fixed time: evaluated once, then reused


def test_usage__reused_answers__every_evaluation_counted(tenant, environments, client):
    from flags.models import FlagEnvironment
    from flags.usage import usage_flush

    for name in ("one", "two"):
        make.flag(tenant, name, environment=environments["production"], is_enabled=True)
    for _ in range(5):
        _all(client, userId="u1")
    for _ in range(3):
        _bulk(client, targetingKey="u1")
    usage_flush()
    counts = dict(FlagEnvironment.objects.filter(flag__tenant=tenant).values_list("flag__name", "evaluation_count"))
    assert counts == {"one": 8, "two": 8}


def test_evaluate__environment_deleted__next_request_refused(tenant, environments, client,
                                                            django_capture_on_commit_callbacks):
    from tenants.services.environments import environment_delete

    env = make.environment("qa")
    for _ in range(2):  # the slug is now held by this process
        r = client.post("/api/v1/feature-flags/evaluate-all", {"environment": "qa"}, format="json")
        assert r.status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        environment_delete(environment=env, actor="t")
    r = client.post("/api/v1/feature-flags/evaluate-all", {"environment": "qa"}, format="json")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.post("/ofrep/v1/evaluate/flags", {"context": {}}, format="json", HTTP_X_ENVIRONMENT="qa")
    assert r.status_code == 400 and r.json()["errorCode"] == "INVALID_CONTEXT"


def test_evaluate__environment_created__usable_at_once(tenant, environments, client):
    r = client.post("/api/v1/feature-flags/evaluate-all", {"environment": "preview"}, format="json")
    assert r.status_code == 404
    make.environment("preview")
    r = client.post("/api/v1/feature-flags/evaluate-all", {"environment": "preview"}, format="json")
    assert r.status_code == 200


@pytest.mark.parametrize("accept, status", [("*/*", 200), ("application/json", 200), (None, 200),
                                            ("text/html", 406), ("application/json; indent=2", 200)])
def test_evaluate_all__accept_header__negotiated_as_before(accept, status, tenant, environments, client):
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    r = client.post("/api/v1/feature-flags/evaluate-all", {"environment": "production"}, format="json", **headers)
    assert r.status_code == status
    assert r["Content-Type"].startswith("application/json")


def _state(feature: dict, segments: list | None = None, extra: list | None = None):
    from flags.engine import compile_state

    return compile_state({"features": [{"name": "f", "enabled": True, **feature}, *(extra or [])], "segments": segments or []})


@pytest.mark.parametrize(
    "feature, context, repeatable",
    [
        ({}, {}, True),
        ({"strategies": [{"name": "userWithId", "parameters": {"userIds": "a"}}]}, {}, True),
        ({"strategies": [{"name": "gradualRolloutRandom", "parameters": {"percentage": 50}}]}, {"userId": "u"}, False),
        ({"strategies": [{"name": "flexibleRollout", "parameters": {"rollout": 50}}]}, {}, False),
        ({"strategies": [{"name": "flexibleRollout", "parameters": {"rollout": 50}}]}, {"userId": ""}, False),
        ({"strategies": [{"name": "flexibleRollout", "parameters": {"rollout": 50}}]}, {"userId": "u"}, True),
        ({"strategies": [{"name": "flexibleRollout", "parameters": {"rollout": 50}}]}, {"sessionId": "s"}, True),
        ({"strategies": [{"name": "flexibleRollout", "parameters": {"rollout": 50, "stickiness": "random"}}]},
         {"userId": "u"}, False),
        ({"strategies": [{"name": "flexibleRollout", "parameters": {"rollout": 50, "stickiness": "tenantId"}}]}, {}, True),
        ({"variants": [{"name": "a", "weight": 1}]}, {}, False),
        ({"variants": [{"name": "a", "weight": 1}]}, {"userId": "u"}, True),
        ({"variants": [{"name": "a", "weight": 1, "stickiness": "random"}]}, {"userId": "u"}, False),
        ({"strategies": [{"name": "default", "variants": [{"name": "a", "weight": 1}],
                          "parameters": {"stickiness": "random"}}]}, {"userId": "u"}, False),
        ({"strategies": [{"name": "default", "constraints": [
            {"contextName": "currentTime", "operator": "DATE_BEFORE", "value": "2030-01-01T00:00:00Z"}]}]}, {}, False),
        ({"strategies": [{"name": "default", "constraints": [
            {"contextName": "currentTime", "operator": "DATE_BEFORE", "value": "2030-01-01T00:00:00Z"}]}]},
         {"currentTime": "2029-01-01T00:00:00Z"}, True),
        ({"strategies": [{"name": "default", "segments": [1]}]}, {}, False),  # the segment's clock constraint
        ({"enabled": False, "strategies": [{"name": "gradualRolloutRandom", "parameters": {"percentage": 50}}]}, {}, True),
        ({"dependencies": [{"feature": "parent"}]}, {"userId": "u"}, False),  # the parent's random rollout
    ],
)
def test_repeatable__what_an_answer_depends_on__detected(feature, context, repeatable):
    segments = [{"id": 1, "constraints": [{"contextName": "currentTime", "operator": "DATE_AFTER", "value": "2020-01-01"}]}]
    parent = {"name": "parent", "enabled": True, "strategies": [{"name": "gradualRolloutRandom", "parameters": {"percentage": 50}}]}
    extra = [parent] if feature.get("dependencies") else []
    assert _state(feature, segments, extra).repeatable(context) is repeatable


@pytest.mark.parametrize("strategy", [
    {"name": "gradualRolloutRandom", "parameters": {"percentage": "50"}},
    {"name": "flexibleRollout", "parameters": {"rollout": "50", "stickiness": "random"}},
])
def test_evaluate_one__random_rollout__the_same_request_repeated_is_never_frozen_by_reuse(strategy, tenant, environments,
                                                                                          client):
    """The single-flag route reuses an answer for a repeated request only when it is repeatable."""
    make.flag(tenant, "coin", environment=environments["production"], is_enabled=True, strategies=[strategy])
    body = {"flag_name": "coin", "environment": "production", "user_id": "u1"}
    seen = {client.post("/api/v1/feature-flags/evaluate", body, format="json").json()["enabled"] for _ in range(60)}
    assert seen == {True, False}  # 60 fair coins all alike: 2**-59
