"""Change requests through the API: open, review, apply; the refusals each with their code."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from events.models import Event
from tenants.models import ConfigEntry
from tests import factories as make

pytestmark = pytest.mark.django_db
CR = "/api/v1/change-requests/"


def _open(client, changes, **extra):
    response = client.post(CR, {"environment": "production", "title": "raise timeout", "changes": changes, **extra},
                           format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_direct_write__protected_production__409_change_request_required_and_nothing_written(tenant, environments, protect, author):
    entry = make.config(tenant, "billing.timeout", 5, environment=environments["production"])
    protect(tenant)

    response = author.put(f"/api/v1/config/{entry.pk}", {"value": 6}, format="json")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "change_request_required"
    assert error["details"]["route"] == CR
    assert ConfigEntry.objects.get(pk=entry.pk).value == 5


def test_change_request__opened_approved_applied__value_changed_with_history_and_events(tenant, environments, protect, author, approver):
    entry = make.config(tenant, "billing.timeout", 5, environment=environments["production"])
    make.config(tenant, "billing.timeout", 3, service_name="billing")  # tenant+service: production's own entry wins
    protect(tenant)

    cr = _open(author, [{"type": "config.set", "key": "billing.timeout", "value": 30}])
    assert cr["status"] == "open"
    assert cr["approvals"] == []
    assert cr["diff"] == [{"type": "config.set", "key": "billing.timeout", "service_name": "", "exists": True,
                           "is_secret": False, "old": 5, "new": 30}]
    services = {s["service"]: s["changes"] for s in cr["affected_services"]}
    assert services[None] == [{"key": "billing.timeout", "old": 5, "new": 30, "old_source": "tenant+environment",
                               "new_source": "tenant+environment"}]
    assert services["billing"][0]["old"] == 5 and services["billing"][0]["new"] == 30

    approved = approver.post(f"{CR}{cr['id']}/approve", {}, format="json")
    assert approved.status_code == 200, approved.content
    assert approved.json()["status"] == "approved"
    assert approved.json()["approvals"] == ["apikey:approver"]

    applied = author.post(f"{CR}{cr['id']}/apply")
    assert applied.status_code == 200, applied.content
    assert applied.json()["status"] == "applied"
    entry.refresh_from_db()
    assert entry.value == 30
    record = entry.history.first()
    assert record.history_actor == f"apikey:author via change request #{cr['id']}"
    assert record.history_change_reason == f"change request #{cr['id']} by apikey:author, approved by apikey:approver"
    kinds = list(Event.objects.filter(resource_type="change_request", key=str(cr["id"])).order_by("id")
                 .values_list("action", flat=True))
    assert kinds == ["opened", "approved", "applied"]
    applied_event = Event.objects.get(resource_type="change_request", action="applied")
    assert applied_event.data["approvers"] == ["apikey:approver"]
    assert Event.objects.filter(resource_type="config", key="billing.timeout", action="updated").exists()


def test_edit__open_request_with_approvals__approvals_cleared(tenant, environments, protect, author, approver, approver2):
    protect(tenant, approvals=2)
    cr = _open(author, [{"type": "config.set", "key": "k", "value": 1}])
    assert approver.post(f"{CR}{cr['id']}/approve").json()["approvals"] == ["apikey:approver"]

    edited = author.patch(f"{CR}{cr['id']}", {"changes": [{"type": "config.set", "key": "k", "value": 2}]}, format="json")

    assert edited.status_code == 200
    assert edited.json()["approvals"] == []
    assert edited.json()["status"] == "open"
    assert edited.json()["revision"] == 2


def test_refusals__each_a_clear_4xx_with_its_code(tenant, environments, protect, author, approver, approver2, make_key, client_for):
    protect(tenant)
    cr = _open(author, [{"type": "config.set", "key": "k", "value": 1}])
    self_approver = client_for(make_key(tenant=tenant, scopes=["configs:write", "changes:approve"], name="author"))

    own = self_approver.post(f"{CR}{cr['id']}/approve")
    assert (own.status_code, own.json()["error"]["code"]) == (409, "author_may_not_approve")
    not_yet = author.post(f"{CR}{cr['id']}/apply")
    assert (not_yet.status_code, not_yet.json()["error"]["code"]) == (409, "change_request_not_approved")
    no_scope = author.post(f"{CR}{cr['id']}/approve")
    assert (no_scope.status_code, no_scope.json()["error"]["code"]) == (403, "approver_required")
    assert approver.post(f"{CR}{cr['id']}/approve").status_code == 200
    twice = approver.post(f"{CR}{cr['id']}/approve")
    assert (twice.status_code, twice.json()["error"]["code"]) == (409, "already_reviewed")
    past = author.patch(f"{CR}{cr['id']}", {"apply_at": (timezone.now() - timedelta(minutes=1)).isoformat()}, format="json")
    assert (past.status_code, past.json()["error"]["code"]) == (400, "apply_at_in_past")
    unknown = author.post(CR, {"environment": "production", "title": "t", "changes": [
        {"type": "config.set", "key": "k", "value": 1, "enviroment": "dev"}]}, format="json")
    assert unknown.status_code == 400
    assert unknown.json()["error"]["details"]["changes"]["0"]["enviroment"] == ["Unknown field."]
    declined = approver2.post(f"{CR}{cr['id']}/decline", {"comment": "not now"}, format="json")
    assert declined.json()["status"] == "declined"
    apply_declined = author.post(f"{CR}{cr['id']}/apply")
    assert (apply_declined.status_code, apply_declined.json()["error"]["code"]) == (409, "change_request_declined")
    assert not ConfigEntry.objects.filter(key="k").exists()


def test_conflict__target_changed_after_opening__apply_refused_conflicted_then_refresh_reopens(tenant, environments, protect, author, approver):
    entry = make.config(tenant, "k", 1, environment=environments["production"])
    protect(tenant)
    cr = _open(author, [{"type": "config.set", "key": "k", "value": 2}])
    approver.post(f"{CR}{cr['id']}/approve")
    # Someone changes the target through another approved request.
    other = _open(author, [{"type": "config.set", "key": "k", "value": 9}])
    approver.post(f"{CR}{other['id']}/approve")
    assert author.post(f"{CR}{other['id']}/apply").status_code == 200

    refused = author.post(f"{CR}{cr['id']}/apply")

    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "change_request_conflicted"
    assert refused.json()["error"]["details"]["conflicts"][0]["target"] == "config k"
    assert author.get(f"{CR}{cr['id']}").json()["status"] == "conflicted"
    assert ConfigEntry.objects.get(pk=entry.pk).value == 9
    assert Event.objects.filter(resource_type="change_request", action="conflicted", key=str(cr["id"])).exists()
    apply_again = author.post(f"{CR}{cr['id']}/apply")
    assert apply_again.json()["error"]["code"] == "change_request_conflicted"

    refreshed = author.post(f"{CR}{cr['id']}/refresh")
    assert refreshed.json()["status"] == "open"
    assert refreshed.json()["diff"][0]["old"] == 9
    approver.post(f"{CR}{cr['id']}/approve")
    assert author.post(f"{CR}{cr['id']}/apply").json()["status"] == "applied"
    assert ConfigEntry.objects.get(pk=entry.pk).value == 2


def test_apply__one_change_refused_by_its_schema__nothing_written_request_conflicted(tenant, environments, protect, author, approver):
    make.config(tenant, "a", 1, environment=environments["production"])
    protect(tenant)
    cr = _open(author, [{"type": "config.set", "key": "a", "value": 2}, {"type": "config.set", "key": "b", "value": "x"}])
    approver.post(f"{CR}{cr['id']}/approve")
    # A schema registered after the request was opened (a schema is global: the
    # protection is lifted for it) refuses its second change.
    protect(tenant, approvals=0, author_may_approve=True)
    make.schema("b", {"type": "integer"})
    protect(tenant)

    response = author.post(f"{CR}{cr['id']}/apply")

    assert response.status_code == 409
    assert ConfigEntry.objects.get(key="a").value == 1
    assert not ConfigEntry.objects.filter(key="b").exists()


def test_secret__in_a_change_request__masked_in_answer_diff_and_events(tenant, environments, protect, author, approver, approver2):
    make.secret(tenant, "db.password", "old-pass-1", environment=environments["production"])
    protect(tenant)
    cr = _open(author, [{"type": "config.set", "key": "db.password", "value": "new-pass-2", "is_secret": True}])

    seen = approver2.get(f"{CR}{cr['id']}").json()  # no secrets:read
    assert seen["changes"][0]["value"] is None and seen["changes"][0]["masked"] is True
    assert seen["diff"][0]["old"] is None and seen["diff"][0]["masked"] is True
    assert "new-pass-2" not in str(seen) and "old-pass-1" not in str(seen)
    approver.post(f"{CR}{cr['id']}/approve")
    assert author.post(f"{CR}{cr['id']}/apply").status_code == 200
    assert ConfigEntry.objects.get(key="db.password").secret_value == "new-pass-2"
    assert "new-pass-2" not in str(list(Event.objects.values_list("data", flat=True)))
    from changes.models import ChangeRequest

    assert "new-pass-2" not in str(ChangeRequest.objects.values_list("changes", flat=True)[0])


def test_flag_set__through_a_request__state_changed(tenant, environments, protect, author, approver):
    from flags.models import FlagEnvironment

    make.flag(tenant, "checkout", environment=environments["production"], is_enabled=False)
    protect(tenant)
    direct = author.patch(f"/api/v1/feature-flags/{tenant.flags.get().pk}", {"environment": "production", "is_enabled": True},
                          format="json")
    assert direct.json()["error"]["code"] == "change_request_required"
    cr = _open(author, [{"type": "flag.set", "name": "checkout", "is_enabled": True, "rollout_percentage": 25}])
    assert cr["diff"][0]["old"] == {"is_enabled": False, "rollout_percentage": 100.0}
    approver.post(f"{CR}{cr['id']}/approve")

    assert author.post(f"{CR}{cr['id']}/apply").status_code == 200

    state = FlagEnvironment.objects.get(flag__name="checkout", environment__slug="production")
    assert (state.enabled, state.rollout_percentage) == (True, 25.0)


def test_unprotected_environment__request_applies_without_approval(tenant, environments, author):
    cr = _open(author, [{"type": "config.set", "key": "k", "value": 1}])
    assert cr["status"] == "approved"
    assert author.post(f"{CR}{cr['id']}/apply").json()["status"] == "applied"


def test_other_tenant__never_sees_or_reviews_the_request(tenant, other_tenant, environments, protect, author, make_key, client_for):
    protect(tenant)
    cr = _open(author, [{"type": "config.set", "key": "k", "value": 1}])
    stranger = client_for(make_key(tenant=other_tenant, scopes=["configs:read", "configs:write", "changes:approve"], name="stranger"))

    assert stranger.get(f"{CR}{cr['id']}").status_code == 404
    assert stranger.post(f"{CR}{cr['id']}/approve").status_code == 404
    assert stranger.get(CR).json() == []


def test_policy__tenant_tightens__loosening_below_global_default_refused(tenant, environments, make_key, client_for, settings):
    settings.CHANGE_PROTECTED_ENVIRONMENTS = ["production"]
    admin = client_for(make_key(tenant=tenant, scopes=["admin"], name="admin"))

    shown = admin.get("/api/v1/environments/production/policy").json()
    assert shown["approvals_required"] == 1 and shown["author_may_approve"] is False and shown["protected"] is True
    tighter = admin.put("/api/v1/environments/production/policy", {"approvals_required": 2, "author_may_approve": False}, format="json")
    assert tighter.status_code == 200 and tighter.json()["approvals_required"] == 2
    looser = admin.put("/api/v1/environments/production/policy", {"approvals_required": 0, "author_may_approve": True}, format="json")
    assert looser.status_code == 400
    assert looser.json()["error"]["code"] == "policy_looser_than_default"
    assert set(looser.json()["error"]["details"]) == {"approvals_required", "author_may_approve"}
    unknown = admin.put("/api/v1/environments/production/policy", {"approvals_required": 2, "author_may_approve": False, "x": 1}, format="json")
    assert unknown.status_code == 400


def test_events__transitions_in_the_outbox__webhooks_and_stream_may_filter_on_them(tenant, environments, protect, author, approver,
                                                                                    make_key, client_for):
    from events.services import webhook_filter_problems

    protect(tenant)
    cr = _open(author, [{"type": "config.set", "key": "k", "value": 1}])
    approver.post(f"{CR}{cr['id']}/approve")

    assert webhook_filter_problems(resource_types=["change_request"]) == {}
    reader = client_for(make_key(tenant=tenant, scopes=["events:read"], name="reader"))
    body = reader.get("/api/v1/events/").content.decode()
    assert '"change_request.opened"' in body and '"change_request.approved"' in body


def test_secret_made_plain__proposed_without_secrets_read__403(tenant, environments, protect, make_key, client_for):
    make.secret(tenant, "db.password", "pw-1", environment=environments["production"])
    protect(tenant)
    writer = client_for(make_key(tenant=tenant, scopes=["configs:read", "configs:write"], name="writer"))

    response = writer.post(CR, {"environment": "production", "title": "unmask", "changes": [
        {"type": "config.set", "key": "db.password", "value": "pw-1", "is_secret": False}]}, format="json")

    assert (response.status_code, response.json()["error"]["code"]) == (403, "secrets_read_required")
