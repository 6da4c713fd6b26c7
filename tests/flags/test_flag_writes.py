"""Writing flags over HTTP: seed 001's shorthand (rollout alone), the routes by id
(get, patch, put, delete), refusals of malformed strategies, and the event and
history each write leaves."""
from __future__ import annotations

import pytest

from tests import factories as make

from .test_evaluate import _evaluate

pytestmark = pytest.mark.django_db


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

def test_write__malformed_strategy__refused_with_clear_message(tenant, environments, make_key, client_for):
    client = client_for(make_key(tenant=tenant, scopes=["flags:write"]))

    r = client.post("/api/v1/feature-flags/", {"name": "bad", "environment": "production", "is_enabled": True,
                                                "strategies": [{"name": "default", "constraints": [{"contextName": "userId", "operator": "LIKE", "values": ["a"]}]}]},
                    format="json")

    assert r.status_code == 400
    assert r.json()["error"]["message"] == "constraint on 'userId': unknown operator 'LIKE'"

def test_flag_write__api__event_and_history_with_key_actor(tenant, environments, make_key, client_for):
    from events.models import Event
    from flags.models import Flag

    client = client_for(make_key(tenant=tenant, scopes=["flags:write"], name="deployer"))
    flag_id = client.post("/api/v1/feature-flags/", {"name": "f1", "environment": "staging", "is_enabled": True}, format="json").json()["id"]

    event = Event.objects.filter(resource_type="flag", key="f1").get()
    assert (event.action, event.actor, event.environment) == ("created", "apikey:deployer", "staging")
    assert Flag.history.filter(id=flag_id).get().history_actor == "apikey:deployer"

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

    theirs = make.flag(other_tenant, "theirs", environment=environments["production"], is_enabled=True, rollout_percentage=10)
    client = client_for(make_key(tenant=tenant, scopes=["flags:read", "flags:write"]))

    got = client.get(f"/api/v1/feature-flags/{theirs.pk}")
    put = client.put(f"/api/v1/feature-flags/{theirs.pk}", {"rollout_percentage": 90.0}, format="json")
    deleted = client.delete(f"/api/v1/feature-flags/{theirs.pk}")

    assert (got.status_code, put.status_code, deleted.status_code) == (404, 404, 404)
    assert FlagEnvironment.objects.get(flag=theirs).rollout_percentage == 10.0
