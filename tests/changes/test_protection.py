"""The protection rule for writes that name no environment (docs/change-requests.md's table)."""
from __future__ import annotations

import pytest

from core.errors import ChangeRequestRequired
from flags.services.flags import flag_create, flag_delete, flag_update
from flags.services.segments import segment_set
from tenants.services.configs import config_create
from tests import factories as make

pytestmark = pytest.mark.django_db


def test_tenant_wide_config__production_holds_its_own_service_value__only_that_service_shadowed(tenant, environments, protect):
    make.config(tenant, "svc.limit", 1, environment=environments["production"], service_name="billing")
    protect(tenant)

    # For billing, production's own entry wins; for every other service the tenant-wide one would.
    config_create(tenant=tenant, key="svc.limit", value=2, service_name="billing", actor="t")
    with pytest.raises(ChangeRequestRequired):
        config_create(tenant=tenant, key="svc.limit", value=2, actor="t")


def test_global_entry__a_tenant_protects_production__refused_for_every_tenant(tenant, other_tenant, environments, protect):
    protect(other_tenant)

    with pytest.raises(ChangeRequestRequired):
        config_create(tenant=None, key="svc.global", value=1, actor="t")
    with pytest.raises(ChangeRequestRequired):
        config_create(tenant=None, key="svc.global", value=1, environment=environments["production"], actor="t")
    config_create(tenant=None, key="svc.global", value=1, environment=environments["staging"], actor="t")


def test_flag_level_writes__only_flags_with_a_protected_state_refused(tenant, environments, protect):
    staged = make.flag(tenant, "staged", environment=environments["staging"])
    live = make.flag(tenant, "live", environment=environments["production"])
    protect(tenant)

    flag_create(tenant=tenant, name="fresh", actor="t")  # no state anywhere
    flag_update(flag=staged, variants=[make.variant("a", 1000, "string", "x")], actor="t")
    with pytest.raises(ChangeRequestRequired):
        flag_update(flag=live, variants=[make.variant("a", 1000, "string", "x")], actor="t")
    with pytest.raises(ChangeRequestRequired):
        flag_delete(flag=live, actor="t")
    flag_update(flag=live, description="what it is for", actor="t")


def test_segment__new_one_goes_through__changing_an_existing_one_refused(tenant, environments, protect):
    make.segment(tenant, "eu", [])
    protect(tenant)

    segment_set(tenant=tenant, name="us", constraints=[], actor="t")
    with pytest.raises(ChangeRequestRequired):
        segment_set(tenant=tenant, name="eu", constraints=[{"contextName": "region", "operator": "IN", "values": ["eu"]}],
                    actor="t")


def test_operator_jwt__approval_needs_the_permission(tenant, environments, protect, author, django_user_model):
    from django.contrib.auth.models import Permission
    from rest_framework.test import APIClient
    from rest_framework_simplejwt.tokens import AccessToken

    protect(tenant)
    cr = author.post("/api/v1/change-requests/", {"environment": "production", "title": "t",
                                                  "changes": [{"type": "config.set", "key": "k", "value": 1}]}, format="json").json()
    alice = django_user_model.objects.create_user("alice", password="pw-alice-1")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(alice)}", HTTP_X_TENANT_ID="acme")

    assert client.post(f"/api/v1/change-requests/{cr['id']}/approve").status_code == 403
    alice.user_permissions.add(Permission.objects.get(codename="approve_changerequest"))
    approved = client.post(f"/api/v1/change-requests/{cr['id']}/approve")
    assert approved.status_code == 200
    assert approved.json()["approvals"] == ["user:alice"]


def test_policy_admin__tenant_row_looser_than_global__refused_with_message(tenant, environments, admin_user, client):
    from changes.models import EnvironmentPolicy
    from changes.policies import policy_set

    policy_set(tenant=None, environment=environments["production"], approvals_required=2, author_may_approve=False, actor="t")
    client.force_login(admin_user)

    page = client.post("/admin/changes/environmentpolicy/add/", {
        "tenant": tenant.pk, "environment": environments["production"].pk, "approvals_required": "1"}, follow=True)

    assert "may not be looser than the global default" in page.content.decode()
    assert not EnvironmentPolicy.objects.filter(tenant=tenant).exists()
