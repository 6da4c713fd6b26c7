"""Scope checks: each view names the scope each method needs."""
from __future__ import annotations

from rest_framework.exceptions import MethodNotAllowed
from rest_framework.permissions import BasePermission

from core.api.tenancy import request_tenant

from .principal import Principal

_SAFE = {"GET", "HEAD", "OPTIONS"}


class HasScope(BasePermission):
    """Allow when the caller holds the scope the view requires for this method.

    A view declares ``read_scope`` and ``write_scope`` (or ``required_scopes`` as
    a method → scope mapping). A view that declares nothing is refused, so a new
    route cannot be open by accident.
    """

    message = "This credential lacks the scope this route needs"

    def has_permission(self, request, view) -> bool:
        principal = request.auth
        if not isinstance(principal, Principal):
            return False
        _refuse_foreign_tenant_header(request, principal)
        if request.method.lower() not in view.http_method_names or not hasattr(view, request.method.lower()):
            # A method the route does not have: 405 with Allow (for a known caller;
            # no credential stays 401), not a scope refusal that sends the caller
            # looking for a key it does not need.
            raise MethodNotAllowed(request.method)
        scope = required_scope(view, request.method)
        if scope is None:
            return False
        self.message = f"This credential lacks the '{scope}' scope"
        return principal.has_scope(scope)


def required_scope(view, method: str) -> str | None:
    mapping = getattr(view, "required_scopes", None)
    if mapping:
        return mapping.get(method) or (mapping.get("GET") if method in _SAFE else None)
    if method in _SAFE:
        return getattr(view, "read_scope", None)
    return getattr(view, "write_scope", None)


def _refuse_foreign_tenant_header(request, principal: Principal) -> None:
    """A bound caller naming another tenant in ``X-Tenant-ID`` gets 404 on every route.

    Tenant-scoped views resolve the tenant themselves; this check covers the
    routes that serve shared data (schemas, environments), so that no route
    answers a request for a tenant the caller is not bound to.
    """
    slug = request.META.get("HTTP_X_TENANT_ID")
    if not slug or principal.tenant_id is None:
        return

    request_tenant(request, slug)


class IsAuthenticatedPrincipal(BasePermission):
    """Any valid credential (the API docs and schema): no scope needed."""

    def has_permission(self, request, view) -> bool:
        if not isinstance(request.auth, Principal) and not getattr(request.user, "is_authenticated", False):
            return False
        if isinstance(request.auth, Principal):
            _refuse_foreign_tenant_header(request, request.auth)
        return True
