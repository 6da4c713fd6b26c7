"""Who may approve or decline a change request: the one place that says so.

API keys: the scope ``changes:approve``. Operators: the permission
``changes.approve_changerequest`` (superusers have every permission). Operator
roles per tenant and environment (when they exist) extend this function, nothing else.
"""
from __future__ import annotations

from typing import Any

from core.errors import Forbidden

from .models import ChangeRequest

APPROVE_SCOPE = "changes:approve"
APPROVE_PERMISSION = "changes.approve_changerequest"


def may_approve(*, change_request: ChangeRequest, principal: Any = None, user: Any = None) -> bool:
    """Whether the caller (an API ``Principal`` or an admin ``User``) may review ``change_request``."""
    if user is not None:
        return bool(user.is_active and user.has_perm(APPROVE_PERMISSION))
    if principal is not None:
        if principal.tenant_id is not None and principal.tenant_id != change_request.tenant_id:
            return False
        return principal.has_scope(APPROVE_SCOPE)
    return False


def change_request_approver_check(*, change_request: ChangeRequest, principal: Any = None, user: Any = None) -> None:
    """403 unless the caller may approve or decline ``change_request``."""
    if not may_approve(change_request=change_request, principal=principal, user=user):
        raise Forbidden(f"reviewing change requests needs the '{APPROVE_SCOPE}' scope "
                        f"(operators: the permission {APPROVE_PERMISSION})", code="approver_required")
