"""Flags through the HTTP API: the Unleash vectors via import + evaluate, seed 001's
shorthand, OFREP, and the write path's events and history."""
from __future__ import annotations

import json

import pytest

from .test_engine_vectors import SPEC, spec_state

pytestmark = pytest.mark.django_db


@pytest.fixture
def vector_env(db):
    from tenants.models import Environment

    # Unleash SDKs put their configured environment ("default") in the context.
    return Environment.objects.get_or_create(slug="default", defaults={"name": "Unleash default"})[0]


def _vector_files():
    return [f for f in json.loads((SPEC / "index.json").read_text())]


@pytest.mark.parametrize("filename", _vector_files())
def test_vectors_through_api__import_then_evaluate__every_case_as_specified(filename, vector_env, make_key, client_for):
    from tenants.services.tenants import tenant_create

    doc = json.loads((SPEC / filename).read_text())
    tenant = tenant_create(slug="vectors", name="vectors", actor="test")
    client = client_for(make_key(tenant=tenant, scopes=["flags:read", "flags:write"]))

    imported = client.post("/api/v1/feature-flags/import/unleash?environment=default", spec_state(doc), format="json")
    assert imported.status_code == 200, imported.content

    mismatches = []
    for case in doc.get("tests", []):
        r = client.post("/api/v1/feature-flags/evaluate",
                        {"flag_name": case["toggleName"], "environment": "default", "context": case["context"]}, format="json")
        enabled = r.json()["enabled"] if r.status_code == 200 else False  # unknown flag: 404 = disabled
        if enabled is not case["expectedResult"]:
            mismatches.append(case["description"])
    for case in doc.get("variantTests", []):
        r = client.post("/api/v1/feature-flags/evaluate",
                        {"flag_name": case["toggleName"], "environment": "default", "context": case["context"]}, format="json")
        variant = r.json()["variant"] if r.status_code == 200 else {"name": "disabled", "enabled": False, "feature_enabled": False}
        if variant != case["expectedResult"]:
            mismatches.append(f"variant: {case['description']}: {variant}")
    assert mismatches == []


def test_seed_shorthand__create_then_put_rollout_alone__changes_the_rollout(tenant, environments, make_key, client_for):
    client = client_for(make_key(tenant=tenant, scopes=["flags:read", "flags:write"]))

    created = client.post("/api/v1/feature-flags/", {"name": "new_ui_design", "environment": "production",
                                                      "is_enabled": True, "rollout_percentage": 10.0}, format="json")
    flag_id = created.json()["id"]
    updated = client.put(f"/api/v1/feature-flags/{flag_id}", {"rollout_percentage": 50.0}, format="json")

    assert created.status_code == 201
    assert created.json()["rollout_percentage"] == 10.0 and created.json()["is_enabled"] is True
    assert updated.status_code == 200
    assert updated.json()["rollout_percentage"] == 50.0
    assert updated.json()["environments"]["production"]["strategies"][0]["parameters"]["rollout"] == "50"


def test_rollout__10_then_50_percent_of_10000_users__share_and_stickiness(
    tenant, environments, make_key, client_for, django_capture_on_commit_callbacks
):
    from flags.selectors import flag_evaluate

    client = client_for(make_key(tenant=tenant, scopes=["flags:read", "flags:write"]))
    flag_id = client.post("/api/v1/feature-flags/", {"name": "new_payment_flow", "environment": "production",
                                                      "is_enabled": True, "rollout_percentage": 10.0}, format="json").json()["id"]
    users = [f"user{i}" for i in range(10_000)]

    def enabled_users():
        return {u for u in users if flag_evaluate(tenant=tenant, environment="production", name="new_payment_flow", context={"userId": u}).enabled}

    at_10 = enabled_users()
    with django_capture_on_commit_callbacks(execute=True):
        client.put(f"/api/v1/feature-flags/{flag_id}", {"rollout_percentage": 50.0}, format="json")
    at_50 = enabled_users()

    assert 850 <= len(at_10) <= 1150
    assert at_10 <= at_50
    assert 4850 <= len(at_50) <= 5150


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


def test_write__malformed_strategy__refused_with_clear_message(tenant, environments, make_key, client_for):
    client = client_for(make_key(tenant=tenant, scopes=["flags:write"]))

    r = client.post("/api/v1/feature-flags/", {"name": "bad", "environment": "production", "is_enabled": True,
                                                "strategies": [{"name": "default", "constraints": [{"contextName": "userId", "operator": "LIKE", "values": ["a"]}]}]},
                    format="json")

    assert r.status_code == 400
    assert r.json()["error"]["message"] == "constraint on 'userId': unknown operator 'LIKE'"


def test_import__broken_document__nothing_written(tenant, environments, make_key, client_for):
    from flags.models import Flag

    client = client_for(make_key(tenant=tenant, scopes=["flags:write"]))
    doc = {"features": [{"name": "ok", "enabled": True}, {"name": "bad", "enabled": True,
                                                        "strategies": [{"name": "flexibleRollout", "parameters": {"rollout": "250"}}]}]}

    r = client.post("/api/v1/feature-flags/import/unleash?environment=production", doc, format="json")

    assert r.status_code == 400
    assert r.json()["error"]["message"] == "cannot import: feature 'bad': strategy 'flexibleRollout': rollout must be a number 0-100, got '250'"
    assert Flag.objects.filter(tenant=tenant).count() == 0


def test_import_unleash__through_the_services__each_flag_and_segment_has_its_event_and_history(
        tenant, environments, make_key, client_for):
    from events.models import Event
    from flags.models import Flag, Segment

    client = client_for(make_key(tenant=tenant, scopes=["flags:write"], name="importer"))
    doc = {"segments": [{"id": 7, "name": "beta", "constraints": [{"contextName": "userId", "operator": "IN",
                                                                   "values": ["u1"]}]}],
           "features": [{"name": "f1", "enabled": True, "strategies": [{"name": "default", "segments": [7]}]}]}

    r = client.post("/api/v1/feature-flags/import/unleash?environment=production", doc, format="json")

    assert r.status_code == 200, r.content
    assert r.json() == {"created": 1, "updated": 0, "segments": 1}
    assert [(e.resource_type, e.action, e.key, e.actor) for e in Event.objects.filter(tenant=tenant).order_by("id")
            if e.resource_type in ("flag", "segment")] == [
        ("segment", "updated", "beta", "apikey:importer"),
        ("flag", "created", "f1", "apikey:importer"),
        ("flag", "imported", "", "apikey:importer"),
    ]
    flag = Flag.objects.get(tenant=tenant, name="f1")
    assert flag.history.get().history_actor == "apikey:importer"
    assert flag.states.get().strategies == [{"name": "default", "segments": [Segment.objects.get(name="beta").pk]}]


def test_import_unleash__strategy_names_another_tenants_segment_id__stored_as_no_segment_never_matches(
        tenant, other_tenant, environments, make_key, client_for):
    from flags.services.segments import segment_set

    theirs = segment_set(tenant=other_tenant, name="everyone", constraints=[], actor="t")
    client = client_for(make_key(tenant=tenant, scopes=["flags:read", "flags:write"]))
    doc = {"features": [{"name": "f1", "enabled": True, "strategies": [{"name": "default", "segments": [theirs.pk]}]}]}

    r = client.post("/api/v1/feature-flags/import/unleash?environment=production", doc, format="json")

    assert r.status_code == 200, r.content
    flag = client.get("/api/v1/feature-flags/").json()[0]
    assert flag["environments"]["production"]["strategies"] == [{"name": "default", "segments": [0]}]
    evaluated = client.post("/api/v1/feature-flags/evaluate", {"flag_name": "f1", "environment": "production",
                                                               "context": {"userId": "u1"}}, format="json")
    assert evaluated.json()["enabled"] is False


def test_flag_write__api__event_and_history_with_key_actor(tenant, environments, make_key, client_for):
    from events.models import Event
    from flags.models import Flag

    client = client_for(make_key(tenant=tenant, scopes=["flags:write"], name="deployer"))
    flag_id = client.post("/api/v1/feature-flags/", {"name": "f1", "environment": "staging", "is_enabled": True}, format="json").json()["id"]

    event = Event.objects.filter(resource_type="flag", key="f1").get()
    assert (event.action, event.actor, event.environment) == ("created", "apikey:deployer", "staging")
    assert Flag.history.filter(id=flag_id).get().history_actor == "apikey:deployer"


def test_evaluate__other_tenant_flag__not_found(tenant, other_tenant, environments, make_key, client_for):
    from flags.services.flags import flag_create

    flag_create(tenant=tenant, name="secret_feature", environment=environments["production"], is_enabled=True, actor="t")
    client = client_for(make_key(tenant=other_tenant, scopes=["flags:read"]))

    r = client.post("/api/v1/feature-flags/evaluate", {"flag_name": "secret_feature", "environment": "production"}, format="json")

    assert r.status_code == 404


@pytest.mark.parametrize("scopes", [["configs:read"], ["registry:read"]])
def test_evaluate__key_without_flags_scope__403(tenant, environments, make_key, client_for, scopes):
    client = client_for(make_key(tenant=tenant, scopes=scopes))

    r = client.post("/api/v1/feature-flags/evaluate", {"flag_name": "x", "environment": "production"}, format="json")

    assert r.status_code == 403


