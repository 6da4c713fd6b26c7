"""The operators' roles in the admin: an object the user may not write is shown read-only.

The gate (tenants/roles.py, registered in tenants/guard.py) refuses the write
whatever the path; this mixin asks the same rule (:func:`tenants.roles.may_write`)
before the page is drawn, so that an editor of staging sees production's objects
without a Save or Delete button, and an add form naming an environment the user
may not write is refused on the form rather than after the post.
"""
from __future__ import annotations

from django import forms

from .models import Environment, Tenant
from .roles import WRITE_ROLE, may_write, scope_label

Scope = tuple[Tenant | None, Environment | None]


class RoleScopedAdminMixin:
    """Put it first in a ModelAdmin's bases and say where an object (and an add
    form's data) is written: ``role_scope(obj)`` and ``role_scope_of_form(cleaned)``
    return (tenant, environment), None meaning every one."""

    role_form_field = "environment"  # where the add form shows a refusal

    def role_scope(self, obj) -> Scope:
        raise NotImplementedError

    def role_scope_of_form(self, cleaned: dict) -> Scope:
        return self.role_scope(None)

    def role_may_write(self, request, obj) -> bool:
        tenant, environment = self.role_scope(obj)
        return may_write(user_id=request.user.pk, tenant=tenant, environment=environment)

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or self.role_may_write(request, obj))

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or self.role_may_write(request, obj))

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)
        if obj is not None:
            return form_class
        model_admin, user_id = self, request.user.pk

        class RoleCheckedForm(form_class):
            def clean(self):
                cleaned = super().clean()
                tenant, environment = model_admin.role_scope_of_form(cleaned)
                if not may_write(user_id=user_id, tenant=tenant, environment=environment):
                    field = model_admin.role_form_field if model_admin.role_form_field in self.fields else None
                    self.add_error(field, forms.ValidationError(
                        f"You may not write in {scope_label(tenant, environment)}: it needs the {WRITE_ROLE} role there.",
                        code="role_required"))
                return cleaned

        return RoleCheckedForm
