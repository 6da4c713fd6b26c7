"""Who may approve or decline a change request: the one place that says so.

API keys: the scope ``changes:approve``. Operators: the approver role (or
admin) in the request's tenant and environment (``tenants.roles``) once they hold
any role, or ``ROLES_REQUIRED`` is on; an operator without roles, the permission
``changes.approve_changerequest`` (superusers may always). An operator's JWT in the
API is that operator: the same rule.
"""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model

from core.errors import Forbidden
from tenants.roles import role_allows, user_has_roles

from .models import ChangeRequest

APPROVE_SCOPE = "changes:approve"
APPROVE_PERMISSION = "changes.approve_changerequest"


def may_approve(*, change_request: ChangeRequest, principal: Any = None, user: Any = None) -> bool:
    """Whether the caller (an API ``Principal`` or an admin ``User``) may review ``change_request``."""
    if user is None and principal is not None and getattr(principal, "user_id", None) is not None:
        user = get_user_model().objects.filter(pk=principal.user_id).first()
        if user is None:
            return False
    if user is not None:
        if not user.is_active:
            return False
        if user.is_superuser:
            return True
        if settings.ROLES_REQUIRED or user_has_roles(user_id=user.pk):
            return role_allows(user_id=user.pk, tenant=change_request.tenant, environment=change_request.environment,
                               role="approver")
        return user.has_perm(APPROVE_PERMISSION)
    if principal is not None:
        if principal.tenant_id is not None and principal.tenant_id != change_request.tenant_id:
            return False
        return principal.has_scope(APPROVE_SCOPE)
    return False


def change_request_approver_check(*, change_request: ChangeRequest, principal: Any = None, user: Any = None) -> None:
    """403 unless the caller may approve or decline ``change_request``."""
    if not may_approve(change_request=change_request, principal=principal, user=user):
        raise Forbidden(f"reviewing change requests needs the '{APPROVE_SCOPE}' scope "
                        f"(operators: the approver role in this tenant and environment, or the permission {APPROVE_PERMISSION})", code="approver_required")
