"""Operators' roles per tenant and environment: an editor of staging edits staging
through the admin and the API, and is refused on production (403 JSON in the
API, read-only in the admin) with nothing changed."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from rest_framework.test import APIClient

from core.errors import Forbidden
from tenants.models import ConfigEntry, RoleAssignment
from tenants.roles import role_allows
from tenants.services.configs import config_create, config_update
from tests import factories as make

pytestmark = pytest.mark.django_db

CONFIG_PERMS = ("view_configentry", "add_configentry", "change_configentry", "delete_configentry")


def _group(name: str, *grants, perms=CONFIG_PERMS) -> Group:
    """A group with the config permissions and ``grants``: (role, tenant, environment) triples."""
    group = Group.objects.create(name=name)
    group.permissions.add(*Permission.objects.filter(codename__in=perms))
    for role, tenant, environment in grants:
        RoleAssignment.objects.create(group=group, role=role, tenant=tenant, environment=environment)
    return group


@pytest.fixture
def staging_editor(django_user_model, tenant, environments):
    user = django_user_model.objects.create_user("stella", password="pw-stella-123", is_staff=True)
    user.groups.add(_group("staging-editors", ("editor", tenant, environments["staging"])))
    return user


@pytest.fixture
def entries(tenant, environments):
    return {env: make.config(tenant, "svc.timeout", 5, environment=environments[env])
            for env in ("staging", "production")}


def _value(entry) -> object:
    return ConfigEntry.objects.get(pk=entry.pk).value


# --- the rule --------------------------------------------------------------------


def test_role_allows__roles_are_ordered_and_scoped(django_user_model, tenant, other_tenant, environments):
    user = django_user_model.objects.create_user("ann", password="pw-ann-12345")
    RoleAssignment.objects.create(user=user, role="approver", tenant=tenant, environment=environments["staging"])
    staging, production = environments["staging"], environments["production"]

    assert role_allows(user_id=user.pk, tenant=tenant, environment=staging, role="editor") is True
    assert role_allows(user_id=user.pk, tenant=tenant, environment=staging, role="approver") is True
    assert role_allows(user_id=user.pk, tenant=tenant, environment=staging, role="admin") is False
    assert role_allows(user_id=user.pk, tenant=tenant, environment=production, role="viewer") is False
    assert role_allows(user_id=user.pk, tenant=other_tenant, environment=staging, role="viewer") is False
    assert role_allows(user_id=user.pk, tenant=None, environment=staging, role="viewer") is False


def test_role_allows__every_environment__needs_the_role_in_each_one(django_user_model, tenant, environments):
    user = django_user_model.objects.create_user("ben", password="pw-ben-12345")
    for slug in ("development", "staging"):
        RoleAssignment.objects.create(user=user, role="editor", tenant=tenant, environment=environments[slug])

    assert role_allows(user_id=user.pk, tenant=tenant, environment=None, role="editor") is False
    RoleAssignment.objects.create(user=user, role="editor", tenant=tenant, environment=environments["production"])
    assert role_allows(user_id=user.pk, tenant=tenant, environment=None, role="editor") is True


def test_role_allows__superuser_everywhere__inactive_user_nowhere(django_user_model, tenant, admin_user):
    user = django_user_model.objects.create_user("gone", password="pw-gone-12345", is_active=False)
    RoleAssignment.objects.create(user=user, role="admin", tenant=None, environment=None)

    assert role_allows(user_id=admin_user.pk, tenant=None, environment=None, role="admin") is True
    assert role_allows(user_id=user.pk, tenant=tenant, environment=None, role="viewer") is False


def test_write__staging_editor__staging_written_production_and_tenant_wide_refused(staging_editor, entries, tenant):
    config_update(entry=entries["staging"], value=7, actor="user:stella", user_id=staging_editor.pk)

    with pytest.raises(Forbidden) as refused:
        config_update(entry=entries["production"], value=7, actor="user:stella", user_id=staging_editor.pk)
    with pytest.raises(Forbidden):
        config_create(tenant=tenant, key="svc.retries", value=3, actor="user:stella", user_id=staging_editor.pk)

    assert refused.value.code == "role_required"
    assert refused.value.details == {"tenant": "acme", "environment": "production", "role": "editor"}
    assert (_value(entries["staging"]), _value(entries["production"])) == (7, 5)
    assert not ConfigEntry.objects.filter(key="svc.retries").exists()


def test_write__viewer_role__refused(django_user_model, tenant, environments, entries):
    user = django_user_model.objects.create_user("vic", password="pw-vic-12345", is_staff=True)
    user.groups.add(_group("viewers", ("viewer", tenant, None)))

    with pytest.raises(Forbidden):
        config_update(entry=entries["staging"], value=9, actor="user:vic", user_id=user.pk)


def test_write__user_without_roles__model_permissions_alone_unless_roles_required(django_user_model, entries, settings):
    user = django_user_model.objects.create_user("old", password="pw-old-12345", is_staff=True)

    config_update(entry=entries["production"], value=8, actor="user:old", user_id=user.pk)
    settings.ROLES_REQUIRED = True
    with pytest.raises(Forbidden):
        config_update(entry=entries["production"], value=9, actor="user:old", user_id=user.pk)

    assert _value(entries["production"]) == 8


def test_write__api_key__keeps_its_scopes(staging_editor, entries, tenant, make_key, client_for, settings):
    settings.ROLES_REQUIRED = True
    client = client_for(make_key(tenant=tenant, scopes=["configs:read", "configs:write"]))

    r = client.put(f"/api/v1/config/{entries['production'].pk}", {"value": 11}, format="json")

    assert (r.status_code, _value(entries["production"])) == (200, 11)


# --- the API: the operator's own JWT -----------------------------------------------


def _jwt_client(username: str, password: str) -> APIClient:
    tokens = APIClient().post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")
    assert tokens.status_code == 200, tokens.content
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens.json()['access']}")
    return client


def test_api__staging_editor__edits_staging__production_is_403_json_and_unchanged(staging_editor, entries, environments):
    api = _jwt_client("stella", "pw-stella-123")

    staging = api.put(f"/api/v1/config/{entries['staging'].pk}", {"value": 6}, format="json")
    production = api.put(f"/api/v1/config/{entries['production'].pk}", {"value": 6}, format="json")
    created = api.post("/api/v1/config/", {"key": "svc.new", "value": 1, "tenant": "acme", "environment": "production"},
                       format="json")
    deleted = api.delete(f"/api/v1/config/{entries['production'].pk}")

    assert (staging.status_code, staging.json()["value"]) == (200, 6)
    assert production.status_code == 403
    assert production.json()["error"]["code"] == "role_required"
    assert production.json()["error"]["details"] == {"tenant": "acme", "environment": "production", "role": "editor"}
    assert (created.status_code, created.json()["error"]["code"]) == (403, "role_required")
    assert deleted.status_code == 403
    assert (_value(entries["staging"]), _value(entries["production"])) == (6, 5)
    assert not ConfigEntry.objects.filter(key="svc.new").exists()


# --- the admin -----------------------------------------------------------------------


def _change_form(entry, value) -> dict:
    return {"value": str(value), "description": "", "_save": "Save"}


def test_admin__staging_editor__production_read_only_staging_editable(staging_editor, entries, client):
    client.force_login(staging_editor)

    staging_page = client.get(f"/admin/tenants/configentry/{entries['staging'].pk}/change/")
    production_page = client.get(f"/admin/tenants/configentry/{entries['production'].pk}/change/")

    assert staging_page.status_code == production_page.status_code == 200
    assert 'name="_save"' in staging_page.content.decode()
    assert 'name="_save"' not in production_page.content.decode()
    assert production_page.context["has_change_permission"] is False
    assert production_page.context["has_delete_permission"] is False


def test_admin__staging_editor__post_to_production_refused_staging_saved(staging_editor, entries, client):
    client.force_login(staging_editor)

    saved = client.post(f"/admin/tenants/configentry/{entries['staging'].pk}/change/", _change_form(entries["staging"], 12))
    refused = client.post(f"/admin/tenants/configentry/{entries['production'].pk}/change/",
                          _change_form(entries["production"], 12))
    deleted = client.post(f"/admin/tenants/configentry/{entries['production'].pk}/delete/", {"post": "yes"})

    assert saved.status_code == 302
    assert refused.status_code == 403
    assert deleted.status_code == 403
    assert (_value(entries["staging"]), _value(entries["production"])) == (12, 5)


def test_admin__staging_editor__add_form_refuses_production(staging_editor, tenant, environments, client):
    client.force_login(staging_editor)
    form = {"tenant": tenant.pk, "service_name": "", "key": "svc.fresh", "value": "1", "description": "", "_save": "Save"}

    refused = client.post("/admin/tenants/configentry/add/", {**form, "environment": environments["production"].pk})
    added = client.post("/admin/tenants/configentry/add/", {**form, "environment": environments["staging"].pk})

    assert refused.status_code == 200
    assert "needs the editor role there" in refused.content.decode()
    assert added.status_code == 302
    assert list(ConfigEntry.objects.filter(key="svc.fresh").values_list("environment__slug", flat=True)) == ["staging"]


def test_admin__superuser__production_editable(admin_user, entries, client):
    client.force_login(admin_user)

    page = client.get(f"/admin/tenants/configentry/{entries['production'].pk}/change/")

    assert 'name="_save"' in page.content.decode()


# --- flags -----------------------------------------------------------------------------


def test_flags__staging_editor__api_switches_staging_not_production__admin_page_read_only(
        django_user_model, tenant, environments, client):
    from flags.models import FlagEnvironment

    user = django_user_model.objects.create_user("fred", password="pw-fred-12345", is_staff=True)
    user.groups.add(_group("flag-staging-editors", ("editor", tenant, environments["staging"]),
                           perms=("view_flag", "change_flag")))
    flag = make.flag(tenant, "new_checkout", environment=environments["production"], is_enabled=False)
    api = _jwt_client("fred", "pw-fred-12345")

    staging = api.patch(f"/api/v1/feature-flags/{flag.pk}", {"environment": "staging", "is_enabled": True}, format="json",
                        HTTP_X_TENANT_ID="acme")
    production = api.patch(f"/api/v1/feature-flags/{flag.pk}", {"environment": "production", "is_enabled": True},
                           format="json", HTTP_X_TENANT_ID="acme")
    client.force_login(user)
    page = client.get(f"/admin/flags/flag/{flag.pk}/change/")

    assert staging.status_code == 200, staging.content
    assert (production.status_code, production.json()["error"]["code"]) == (403, "role_required")
    states = dict(FlagEnvironment.objects.filter(flag=flag).values_list("environment__slug", "enabled"))
    assert states == {"staging": True, "production": False}
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()


def test_admin__group_page__roles_added_beside_its_permissions(admin_user, tenant, environments, client):
    group = Group.objects.create(name="staging-editors")
    client.force_login(admin_user)
    prefix = "hub_roles"

    r = client.post(f"/admin/auth/group/{group.pk}/change/", {
        "name": "staging-editors", f"{prefix}-TOTAL_FORMS": "1", f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-0-role": "editor", f"{prefix}-0-tenant": tenant.pk, f"{prefix}-0-environment": environments["staging"].pk,
    })

    assert r.status_code == 302, r.content.decode()[:3000]
    assert list(group.hub_roles.values_list("role", "tenant__slug", "environment__slug")) == [("editor", "acme", "staging")]


def test_admin__role_assignment_without_holder__refused_on_the_form(admin_user, tenant, client):
    client.force_login(admin_user)

    r = client.post("/admin/tenants/roleassignment/add/", {"group": "", "user": "", "tenant": tenant.pk,
                                                           "environment": "", "role": "editor"})

    assert r.status_code == 200
    assert "A role is held by a group or by a user: choose one of them." in r.content.decode()
    assert RoleAssignment.objects.count() == 0


def test_writes_reaching_every_tenant_or_environment__need_the_role_there(django_user_model, tenant, environments):
    """A new flag in production, a segment (every environment) and a schema (every tenant):
    refused to an editor of acme's staging, allowed to an editor of everything."""
    from flags.models import Flag, Segment
    from flags.services.flags import flag_create
    from flags.services.segments import segment_set
    from tenants.models import ConfigSchema
    from tenants.services.schemas import schema_set

    narrow = django_user_model.objects.create_user("nina", password="pw-nina-12345", is_staff=True)
    RoleAssignment.objects.create(user=narrow, role="editor", tenant=tenant, environment=environments["staging"])
    wide = django_user_model.objects.create_user("walt", password="pw-walt-12345", is_staff=True)
    RoleAssignment.objects.create(user=wide, role="editor", tenant=None, environment=None)
    attempts = [
        lambda user: flag_create(tenant=tenant, name=f"f_{user.username}", environment=environments["production"],
                                 actor=f"user:{user.username}", user_id=user.pk),
        lambda user: segment_set(tenant=tenant, name=f"s_{user.username}", constraints=[],
                                 actor=f"user:{user.username}", user_id=user.pk),
        lambda user: schema_set(key=f"k.{user.username}", schema={"type": "integer"},
                                actor=f"user:{user.username}", user_id=user.pk),
    ]

    for attempt in attempts:
        with pytest.raises(Forbidden):
            attempt(narrow)
        attempt(wide)

    assert list(Flag.objects.values_list("name", flat=True)) == ["f_walt"]
    assert list(Segment.objects.values_list("name", flat=True)) == ["s_walt"]
    assert list(ConfigSchema.objects.values_list("key", flat=True)) == ["k.walt"]
