"""Importing an Unleash state document: the client-specification vectors through
import + evaluate over HTTP, and a broken document refused whole."""
from __future__ import annotations

import json

import pytest

from tests import factories as make

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
    doc = json.loads((SPEC / filename).read_text())
    tenant = make.tenant("vectors", name="vectors")
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
    theirs = make.segment(other_tenant, "everyone", constraints=[])
    client = client_for(make_key(tenant=tenant, scopes=["flags:read", "flags:write"]))
    doc = {"features": [{"name": "f1", "enabled": True, "strategies": [{"name": "default", "segments": [theirs.pk]}]}]}

    r = client.post("/api/v1/feature-flags/import/unleash?environment=production", doc, format="json")

    assert r.status_code == 200, r.content
    flag = client.get("/api/v1/feature-flags/").json()[0]
    assert flag["environments"]["production"]["strategies"] == [{"name": "default", "segments": [0]}]
    evaluated = client.post("/api/v1/feature-flags/evaluate", {"flag_name": "f1", "environment": "production",
                                                               "context": {"userId": "u1"}}, format="json")
    assert evaluated.json()["enabled"] is False
