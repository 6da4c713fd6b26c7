"""Schema changes inside a change request: schema.set / schema.delete, opened by a
caller allowed the direct schema route, reviewed with the resolved values their
default changes, applied all or nothing, conflicted when the schema moved."""
from __future__ import annotations

import pytest

from changes.models import ChangeRequest
from events.models import Event
from tenants.models import ConfigEntry, ConfigSchema
from tests import factories as make

pytestmark = pytest.mark.django_db
CR = "/api/v1/change-requests/"


@pytest.fixture
def platform(tenant, make_key, client_for):
    """A platform key with ``admin`` (what the direct schema routes need), acting for the tenant."""
    return client_for(make_key(tenant=None, scopes=["admin"], name="platform"), HTTP_X_TENANT_ID=tenant.slug)


def _open(client, changes, **extra):
    return client.post(CR, {"environment": "production", "title": "schema", "changes": changes, **extra}, format="json")


def _opened(client, changes):
    response = _open(client, changes)
    assert response.status_code == 201, response.content
    return response.json()


def test_schema_set__opened_approved_applied__diff_affected_services_history_and_events(tenant, environments, protect,
                                                                                         platform, approver):
    make.schema("svc.limit", {"type": "integer"}, default_value=1)
    # billing holds its own value in production: the default does not reach it.
    make.config(tenant, "svc.limit", 5, environment=environments["production"], service_name="billing")
    protect(tenant)
    new = {"type": "integer", "maximum": 100}

    cr = _opened(platform, [{"type": "schema.set", "key": "svc.limit", "schema": new, "default_value": 2}])

    assert cr["diff"] == [{"type": "schema.set", "key": "svc.limit", "exists": True,
                           "old": {"schema": {"type": "integer"}, "metadata": {}, "required": False, "default_value": 1},
                           "new": {"schema": new, "metadata": {}, "required": False, "default_value": 2}}]
    assert cr["affected_services"] == [{"service": None, "changes": [
        {"key": "svc.limit", "old": 1, "new": 2, "old_source": "default", "new_source": "default"}]}]
    assert approver.post(f"{CR}{cr['id']}/approve").status_code == 200

    applied = platform.post(f"{CR}{cr['id']}/apply")

    assert applied.status_code == 200, applied.content
    assert applied.json()["status"] == "applied"
    schema = ConfigSchema.objects.get(key="svc.limit")
    assert (schema.schema, schema.default_value, schema.version) == (new, 2, 2)
    record = schema.history.first()
    assert record.history_actor == f"apikey:platform via change request #{cr['id']}"
    assert record.history_change_reason == f"change request #{cr['id']} by apikey:platform, approved by apikey:approver"
    event = Event.objects.filter(resource_type="schema", key="svc.limit", action="updated").latest("id")
    assert event.actor == f"apikey:platform via change request #{cr['id']}"


def test_schema_delete__applied__schema_gone_and_default_no_longer_resolved(tenant, environments, protect, platform, approver):
    make.schema("svc.limit", {"type": "integer"}, default_value=1)
    protect(tenant)

    cr = _opened(platform, [{"type": "schema.delete", "key": "svc.limit"}])

    assert cr["diff"][0]["new"] is None and cr["diff"][0]["old"]["default_value"] == 1
    assert cr["affected_services"][0]["changes"] == [
        {"key": "svc.limit", "old": 1, "new": None, "old_source": "default", "new_source": None}]
    approver.post(f"{CR}{cr['id']}/approve")
    assert platform.post(f"{CR}{cr['id']}/apply").json()["status"] == "applied"
    assert not ConfigSchema.objects.filter(key="svc.limit").exists()


def test_schema_and_config__one_request__applied_together(tenant, environments, protect, platform, approver):
    make.config(tenant, "svc.other", 1, service_name="billing")  # billing is a service the tenant knows
    protect(tenant)

    cr = _opened(platform, [{"type": "schema.set", "key": "svc.mode", "schema": {"enum": ["a", "b"]}, "default_value": "a"},
                            {"type": "config.set", "key": "svc.mode", "value": "b", "service_name": "billing"}])

    services = {s["service"]: s["changes"] for s in cr["affected_services"]}
    assert services[None] == [{"key": "svc.mode", "old": None, "new": "a", "old_source": None, "new_source": "default"}]
    assert services["billing"][0]["new"] == "b"
    approver.post(f"{CR}{cr['id']}/approve")
    assert platform.post(f"{CR}{cr['id']}/apply").json()["status"] == "applied"
    assert ConfigSchema.objects.get(key="svc.mode").default_value == "a"
    assert ConfigEntry.objects.get(key="svc.mode").value == "b"


def test_schema_change__without_the_schema_route_right__403_nothing_opened(tenant, environments, protect, author, make_key,
                                                                          client_for, platform, approver):
    protect(tenant)
    change = {"type": "schema.set", "key": "svc.limit", "schema": {"type": "integer"}, "default_value": 3}
    tenant_admin = client_for(make_key(tenant=tenant, scopes=["admin"], name="tenant-admin"))
    platform_writer = client_for(make_key(tenant=None, scopes=["configs:write"], name="platform-writer"),
                                 HTTP_X_TENANT_ID=tenant.slug)

    for client in (author, tenant_admin, platform_writer):
        refused = _open(client, [change])
        assert refused.status_code == 403, refused.content
    assert not ChangeRequest.objects.exists()

    # Nor slipped in by an edit, nor applied by a tenant-bound key.
    cr = _opened(author, [{"type": "config.set", "key": "k", "value": 1}])
    assert author.patch(f"{CR}{cr['id']}", {"changes": [change]}, format="json").status_code == 403
    proposed = _opened(platform, [change])
    approver.post(f"{CR}{proposed['id']}/approve")
    assert author.post(f"{CR}{proposed['id']}/apply").status_code == 403
    assert not ConfigSchema.objects.filter(key="svc.limit").exists()


@pytest.mark.parametrize(("change", "field"), [
    ({"type": "schema.set", "key": "svc.limit", "schema": {"type": "integer"}, "verson": 1}, "verson"),
    ({"type": "schema.set", "key": "svc.limit", "schema": {"type": "integer"}, "version": 1}, "version"),
    ({"type": "schema.set", "key": "svc.limit"}, "schema"),
    ({"type": "schema.set", "key": "svc.limit", "schema": {"type": "no-such-type"}}, "schema"),
    ({"type": "schema.set", "key": "svc.limit", "schema": {"type": "integer"}, "default_value": "x"}, "default_value"),
    ({"type": "schema.set", "key": "svc.limit", "schema": {"type": "integer"}, "metadata": [1]}, "metadata"),
    ({"type": "schema.set", "key": "bad key!", "schema": {"type": "integer"}}, "key"),
    ({"type": "schema.delete", "key": "svc.limit", "schema": {}}, "schema"),
])
def test_schema_change__invalid__400_naming_the_change_and_field(tenant, environments, protect, platform, change, field):
    protect(tenant)

    refused = _open(platform, [change])

    assert refused.status_code == 400, refused.content
    assert field in refused.json()["error"]["details"]["changes"]["0"]
    assert not ChangeRequest.objects.exists()


def test_schema_set__existing_values_break_it__400_at_open(tenant, environments, protect, platform):
    make.config(tenant, "svc.limit", "ten", environment=environments["staging"])
    protect(tenant)

    refused = _open(platform, [{"type": "schema.set", "key": "svc.limit", "schema": {"type": "integer"}}])

    assert refused.status_code == 400
    assert "schema" in refused.json()["error"]["details"]["changes"]["0"]


def test_schema_conflict__schema_changed_after_opening__apply_refused_then_refresh_rebases(tenant, environments, protect,
                                                                                            platform, approver):
    make.schema("svc.limit", {"type": "integer"}, default_value=1)
    protect(tenant)
    cr = _opened(platform, [{"type": "schema.set", "key": "svc.limit", "schema": {"type": "integer"}, "default_value": 2}])
    approver.post(f"{CR}{cr['id']}/approve")
    # A direct write keeping the default goes through the gate: the schema moves on.
    assert platform.put("/api/v1/schemas/svc.limit", {"schema": {"type": "number"}, "default_value": 1},
                        format="json").status_code == 200

    refused = platform.post(f"{CR}{cr['id']}/apply")

    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "change_request_conflicted"
    assert refused.json()["error"]["details"]["conflicts"][0]["target"] == "schema svc.limit"
    assert ConfigSchema.objects.get(key="svc.limit").schema == {"type": "number"}
    refreshed = platform.post(f"{CR}{cr['id']}/refresh").json()
    assert refreshed["status"] == "open"
    assert refreshed["diff"][0]["old"]["schema"] == {"type": "number"}
    approver.post(f"{CR}{cr['id']}/approve")
    assert platform.post(f"{CR}{cr['id']}/apply").json()["status"] == "applied"
    assert ConfigSchema.objects.get(key="svc.limit").default_value == 2


def test_schema_set__a_value_written_since_breaks_it__nothing_applied_request_conflicted(tenant, environments, protect,
                                                                                        platform, approver):
    protect(tenant)
    cr = _opened(platform, [{"type": "config.set", "key": "svc.other", "value": 1},
                            {"type": "schema.set", "key": "svc.limit", "schema": {"type": "integer"}}])
    approver.post(f"{CR}{cr['id']}/approve")
    make.config(tenant, "svc.limit", "ten", environment=environments["staging"])  # staging is not protected

    refused = platform.post(f"{CR}{cr['id']}/apply")

    assert refused.status_code == 409
    assert platform.get(f"{CR}{cr['id']}").json()["status"] == "conflicted"
    assert not ConfigSchema.objects.filter(key="svc.limit").exists()
    assert not ConfigEntry.objects.filter(key="svc.other").exists()


def test_schema_delete__schema_gone_since__conflicted(tenant, environments, protect, platform, approver):
    make.schema("svc.limit", {"type": "integer"})
    protect(tenant)
    cr = _opened(platform, [{"type": "schema.delete", "key": "svc.limit"}])
    approver.post(f"{CR}{cr['id']}/approve")
    # A schema without a default leaves through the gate.
    assert platform.delete("/api/v1/schemas/svc.limit").status_code == 204

    refused = platform.post(f"{CR}{cr['id']}/apply")

    assert refused.json()["error"]["code"] == "change_request_conflicted"


def test_direct_schema_default_change__refused_pointing_to_change_requests(tenant, environments, protect, platform):
    make.schema("svc.limit", {"type": "integer"}, default_value=1)
    protect(tenant)

    refused = platform.put("/api/v1/schemas/svc.limit", {"schema": {"type": "integer"}, "default_value": 2}, format="json")

    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "change_request_required"
    assert error["details"]["route"] == CR
    assert CR in error["message"]


def test_admin__schema_default_refused__links_a_prefilled_request_and_the_request_page_shows_it(
        tenant, environments, protect, admin_user, client):
    schema = make.schema("svc.limit", {"type": "integer"}, default_value=1)
    protect(tenant)
    client.force_login(admin_user)

    page = client.post(f"/admin/tenants/configschema/{schema.pk}/change/", {
        "schema": '{"type": "integer"}', "metadata": "{}", "default_value": "2"}, follow=True).content.decode()

    assert "change-request-link" in page and "schema.set" in page
    assert ConfigSchema.objects.get(key="svc.limit").default_value == 1

    created = client.post("/admin/changes/changerequest/add/", {
        "tenant": tenant.pk, "environment": environments["production"].pk, "title": "limit to 2", "description": "",
        "changes": '[{"type": "schema.set", "key": "svc.limit", "schema": {"type": "integer"}, "default_value": 2}]'})
    assert created.status_code == 302, created.content
    cr = ChangeRequest.objects.get()
    shown = client.get(f"/admin/changes/changerequest/{cr.pk}/change/").content.decode()
    assert "schema svc.limit" in shown


def test_admin__schema_change_without_schema_permission__refused(tenant, environments, protect, client):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user("op", "op@example.com", "pw-op-12345", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["add_changerequest", "change_changerequest",
                                                                      "view_changerequest"]))
    protect(tenant)
    client.force_login(user)

    page = client.post("/admin/changes/changerequest/add/", {
        "tenant": tenant.pk, "environment": environments["production"].pk, "title": "limit", "description": "",
        "changes": '[{"type": "schema.delete", "key": "svc.limit"}]'}, follow=True)

    assert "changing schemas needs the permission" in page.content.decode()
    assert not ChangeRequest.objects.exists()


def test_schema_change__reviewed_under_the_strictest_policy_anywhere(tenant, other_tenant, environments, protect,
                                                                     platform, approver, approver2):
    """A request of an unprotected environment cannot carry a schema default past
    another tenant's protected production: it needs the strictest policy's approvals."""
    make.schema("svc.limit", {"type": "integer"}, default_value=1)
    protect(other_tenant, approvals=2)
    cr = platform.post(CR, {"environment": "development", "title": "limit", "changes": [
        {"type": "schema.set", "key": "svc.limit", "schema": {"type": "integer"}, "default_value": 2}]}, format="json").json()

    assert (cr["status"], cr["policy"]["approvals_required"]) == ("open", 2)
    assert platform.post(f"{CR}{cr['id']}/apply").json()["error"]["code"] == "change_request_not_approved"
    assert approver.post(f"{CR}{cr['id']}/approve").json()["status"] == "open"
    assert approver2.post(f"{CR}{cr['id']}/approve").json()["status"] == "approved"
    assert platform.post(f"{CR}{cr['id']}/apply").json()["status"] == "applied"
    assert ConfigSchema.objects.get(key="svc.limit").default_value == 2
