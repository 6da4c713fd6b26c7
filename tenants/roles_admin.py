"""The operators' roles in the admin: the role assignments, and an object the user may not write is shown read-only.

The gate (tenants/roles.py, registered in tenants/guard.py) refuses the write
whatever the path; this mixin asks the same rule (:func:`tenants.roles.may_write`)
before the page is drawn, so that an editor of staging sees production's objects
without a Save or Delete button, and an add form naming an environment the user
may not write is refused on the form rather than after the post.
"""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.models import Group
from simple_history.admin import SimpleHistoryAdmin

from .models import Environment, RoleAssignment, Tenant
from .roles import WRITE_ROLE, may_write, scope_label

Scope = tuple[Tenant | None, Environment | None]


class RoleScopedAdminMixin:
    """Put it first in a ModelAdmin's bases. Where an object is written:
    ``role_scope(obj)``, where an add form writes: ``role_scope_of_form(cleaned)``,
    each (tenant, environment), None meaning every one. By default the object's
    (and the form's) ``tenant`` and ``environment``; a model without one of them is
    written for every one (a schema: every tenant and environment)."""

    role_form_field = "environment"  # where the add form shows a refusal

    def role_scope(self, obj) -> Scope:
        return getattr(obj, "tenant", None), getattr(obj, "environment", None)

    def role_scope_of_form(self, cleaned: dict) -> Scope:
        return cleaned.get("tenant"), cleaned.get("environment")

    def role_may_write(self, request, obj) -> bool:
        # Django asks has_change/delete_permission many times per page: the rule's
        # answer is kept on the request, per scope (the roles do not change mid-request).
        tenant, environment = self.role_scope(obj)
        memo = request.__dict__.setdefault("_role_may_write", {})
        scope = (getattr(tenant, "pk", None), getattr(environment, "pk", None))
        if scope not in memo:
            memo[scope] = may_write(user_id=request.user.pk, tenant=tenant, environment=environment)
        return memo[scope]

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or self.role_may_write(request, obj))

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or self.role_may_write(request, obj))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # Say why the page is read-only for someone whose permissions would allow the change.
        if request.method == "GET" and super().has_change_permission(request):
            obj = self.get_object(request, unquote(object_id))
            if obj is not None and not self.role_may_write(request, obj):
                tenant, environment = self.role_scope(obj)
                messages.warning(request, f"Read-only for you: changing it needs the {WRITE_ROLE} role in "
                                       f"{scope_label(tenant, environment)}.")
        return super().change_view(request, object_id, form_url, extra_context)

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


# --- roles ---------------------------------------------------------------------------------


@admin.register(RoleAssignment)
class RoleAssignmentAdmin(SimpleHistoryAdmin):
    """Who may change what (tenants/roles.py): a role for a group (what single sign-on
    maps the identity provider's groups to) or a user, in a tenant and an environment."""

    list_display = ("holder", "role", "tenant_label", "environment_label", "created_at")
    list_filter = ("role", "tenant", "environment", "group")
    list_select_related = ("group", "user", "tenant", "environment")
    fields = ("group", "user", "tenant", "environment", "role")

    @admin.display(description="held by")
    def holder(self, obj):
        return f"group {obj.group}" if obj.group_id else f"user {obj.user}"

    @admin.display(description="tenant", ordering="tenant__slug")
    def tenant_label(self, obj):
        return obj.tenant.slug if obj.tenant_id else "(every tenant)"

    @admin.display(description="environment", ordering="environment__slug")
    def environment_label(self, obj):
        return obj.environment.slug if obj.environment_id else "(every environment)"


class GroupRoleInline(admin.TabularInline):
    model = RoleAssignment
    fk_name = "group"
    fields = ("role", "tenant", "environment")
    extra = 0
    verbose_name_plural = "roles (where the group's permissions apply)"


# A group's page shows its roles beside its permissions: what and where, in one place.
admin.site.unregister(Group)


@admin.register(Group)
class GroupWithRolesAdmin(GroupAdmin):
    inlines = [GroupRoleInline]
