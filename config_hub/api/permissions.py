"""Scope checks: each view names the scope each method needs."""
from __future__ import annotations

from rest_framework.permissions import BasePermission

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
