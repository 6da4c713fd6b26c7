"""Change requests use the operators' approver role: an approver of staging may
review staging's requests and not production's, in the admin's service and with
the operator's JWT in the API alike."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from changes.models import ChangeRequest
from changes.policies import policy_set
from changes.services.change_requests import change_request_approve, change_request_create
from core.errors import Forbidden
from tenants.models import RoleAssignment

pytestmark = pytest.mark.django_db


@pytest.fixture
def requests_(tenant, environments):
    out = {}
    for env in ("staging", "production"):
        policy_set(tenant=tenant, environment=environments[env], approvals_required=1, author_may_approve=False,
                   actor="test")
        out[env] = change_request_create(tenant=tenant, environment=environments[env], title=f"timeout in {env}",
                                         changes=[{"type": "config.set", "key": "svc.timeout", "value": 9}],
                                         actor="user:author")
    return out


@pytest.fixture
def staging_approver(django_user_model, tenant, environments):
    user = django_user_model.objects.create_user("sam", password="pw-sam-123456", is_staff=True)
    RoleAssignment.objects.create(user=user, role="approver", tenant=tenant, environment=environments["staging"])
    return user


def test_approver_role__staging_only__approves_staging_refused_on_production(requests_, staging_approver):
    change_request_approve(change_request=requests_["staging"], actor="user:sam", user_id=staging_approver.pk,
                           user=staging_approver)
    with pytest.raises(Forbidden) as refused:
        change_request_approve(change_request=requests_["production"], actor="user:sam", user_id=staging_approver.pk,
                               user=staging_approver)

    assert refused.value.code == "approver_required"
    assert ChangeRequest.objects.get(pk=requests_["staging"].pk).status == "approved"
    assert ChangeRequest.objects.get(pk=requests_["production"].pk).status == "open"


def test_approver_role__operator_jwt_in_the_api__same_rule(requests_, staging_approver, tenant):
    client = APIClient()
    token = client.post("/api/v1/auth/token/", {"username": "sam", "password": "pw-sam-123456"}, format="json").json()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token['access']}", HTTP_X_TENANT_ID=tenant.slug)

    ok = client.post(f"/api/v1/change-requests/{requests_['staging'].pk}/approve", {}, format="json")
    refused = client.post(f"/api/v1/change-requests/{requests_['production'].pk}/approve", {}, format="json")

    assert ok.status_code == 200, ok.content
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "approver_required"
    assert ChangeRequest.objects.get(pk=requests_["production"].pk).status == "open"
