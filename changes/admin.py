"""The admin of change requests and policies, and the protected editing of configs and flags.

The config entry, schema, flag and segment admins of the apps below are
re-registered here with one addition each: a write the gate refuses (a protected
environment) is an error on the page, never a 500 and never half-saved; for a
config entry the page offers to save the edit as a draft change request instead,
for a flag state the error links to a pre-filled change request.
"""
from __future__ import annotations

import json
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from core.admin import MASK, PrettyJSONField, actor_of
from core.errors import ChangeRequestRequired, DomainError, Forbidden
from flags.admin import FlagAdmin, FlagEnvironmentForm, FlagEnvironmentInline, SegmentAdmin
from flags.models import Flag, Segment
from flags.services.flags import flag_update
from tenants.admin import ConfigEntryAdmin, ConfigSchemaAdmin
from tenants.guard import write_check
from tenants.models import ConfigEntry, ConfigSchema

from . import selectors
from .approvers import may_approve
from .changeset import CONFIG_SET, FLAG_SET, SCHEMA_DELETE, SCHEMA_SET, secrets_made_plain
from .models import ChangeRequest, EnvironmentPolicy
from .policies import policy_set
from .review import may_change_schemas, review_rows
from .services import change_requests as svc


class RefusedWriteMixin:
    """A save a service refuses (the write gate, a race) rolls the page's transaction
    back and is shown as an error message, the operator back on the form."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except (DomainError, ValidationError) as exc:
            cause = exc if isinstance(exc, DomainError) else exc.__cause__
            if not isinstance(cause, DomainError):
                raise
            if not isinstance(exc, ValidationError):  # ConfigEntryAdmin already said it
                self.message_user(request, f"Not saved: {cause.message}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


def _cr_add_url(**params) -> str:
    return reverse("admin:changes_changerequest_add") + "?" + urlencode(params)


# --- config entries: refused in the form, with a "save as draft change request" ------------------


class ProtectedConfigEntryAdmin(RefusedWriteMixin, ConfigEntryAdmin):
    change_form_template = "admin/changes/configentry_change_form.html"

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)
        skip_gate = request.method == "POST" and "_as_change_request" in request.POST

        class Form(form_class):
            change_request_offer = False

            def clean(self):
                cleaned = super().clean()
                if skip_gate or self.errors or (self.instance.pk and not self.has_changed()):
                    return cleaned
                inst = self.instance
                tenant = inst.tenant if inst.pk else cleaned.get("tenant")
                env = inst.environment if inst.pk else cleaned.get("environment")
                try:
                    write_check(tenant=tenant, environment=env, resource="config",
                                action="update" if inst.pk else "create", key=inst.key if inst.pk else cleaned.get("key", ""),
                                actor=actor_of(request), user_id=request.user.pk,
                                service_name=(inst.service_name if inst.pk else cleaned.get("service_name")) or "")
                except ChangeRequestRequired as exc:
                    self.change_request_offer = tenant is not None and env is not None
                    hint = " Save it as a draft change request instead (button below)." if self.change_request_offer else ""
                    raise forms.ValidationError(exc.message + hint, code="change_request_required") from exc
                except DomainError as exc:
                    raise forms.ValidationError(exc.message, code=exc.code) from exc
                return cleaned

        return Form

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method == "POST" and "_as_change_request" in request.POST:
            response = self._as_change_request(request, object_id)
            if response is not None:
                return response
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _as_change_request(self, request, object_id):
        """The edit on the page as a draft change request of its tenant and environment."""
        obj = self.get_object(request, object_id) if object_id else None
        if not request.user.has_perm("changes.add_changerequest"):
            raise PermissionDenied
        form = self.get_form(request, obj, change=obj is not None)(request.POST, request.FILES, instance=obj)
        if not form.is_valid():
            return None
        data = form.cleaned_data
        tenant = obj.tenant if obj else data.get("tenant")
        env = obj.environment if obj else data.get("environment")
        if tenant is None or env is None:
            self.message_user(request, "A change request changes one tenant and environment: this entry has none.",
                              messages.ERROR)
            return None
        value = data.get("value")
        if value == MASK:
            value = obj.secret_value if obj is not None else None
        change = {"type": CONFIG_SET, "key": obj.key if obj else data["key"],
                  "service_name": (obj.service_name if obj else data.get("service_name")) or "",
                  "value": value, "is_secret": bool(data.get("is_secret"))}
        try:
            cr = svc.change_request_create(tenant=tenant, environment=env, title=f"Set {change['key']} in {env.slug}",
                                           changes=[change], actor=actor_of(request), user_id=request.user.pk, draft=True)
        except DomainError as exc:
            self.message_user(request, f"No change request made: {exc.message}", messages.ERROR)
            return None
        self.message_user(request, f"Saved as draft change request #{cr.pk}: submit it for review when ready.")
        return HttpResponseRedirect(reverse("admin:changes_changerequest_change", args=[cr.pk]))


# --- flags: a refused state is an error on its row, with a pre-filled change request -------------


class ProtectedFlagEnvironmentForm(FlagEnvironmentForm):
    def clean(self):
        cleaned = super().clean()
        flag = getattr(self.instance, "flag", None)
        env = cleaned.get("environment")
        if self.errors or flag is None or env is None or not self.has_changed() or cleaned.get("DELETE"):
            return cleaned
        try:
            write_check(tenant=flag.tenant, environment=env, resource="flag", action="update", key=flag.name,
                        actor="admin", service_name="")
        except ChangeRequestRequired as exc:
            change = {"type": FLAG_SET, "name": flag.name, "is_enabled": bool(cleaned.get("enabled")),
                      "strategies": cleaned.get("strategies") or []}
            url = _cr_add_url(tenant=flag.tenant_id, environment=env.pk, title=f"{flag.name} in {env.slug}",
                              changes=json.dumps([change]))
            raise forms.ValidationError(format_html('{} <a href="{}" class="change-request-link">Open this as a change '
                                                    "request</a>.", exc.message, url)) from exc
        return cleaned


class ProtectedFlagEnvironmentInline(FlagEnvironmentInline):
    form = ProtectedFlagEnvironmentForm


class ProtectedFlagAdmin(RefusedWriteMixin, FlagAdmin):
    inlines = [ProtectedFlagEnvironmentInline]

    def save_model(self, request, obj, form, change):
        reverting = getattr(request, "_history_version_id", None) is not None  # FlagAdmin: flag_revert
        if change and not reverting and not ({"kind", "variants", "dependencies"} & set(form.changed_data)):
            # Only the description (or nothing of the flag itself): a description
            # changes no evaluation, and is no write into any environment.
            if "description" in form.changed_data:
                flag_update(flag=obj, description=form.cleaned_data.get("description"), actor=actor_of(request),
                            user_id=request.user.pk)
            return
        super().save_model(request, obj, form, change)


class ProtectedSegmentAdmin(RefusedWriteMixin, SegmentAdmin):
    pass


class ProtectedConfigSchemaAdmin(RefusedWriteMixin, ConfigSchemaAdmin):
    """A schema write the gate refuses (its default value changes while an
    environment is protected) is an error on the page linking to a pre-filled
    change request (``schema.set``; the operator picks its tenant and environment)."""

    def save_model(self, request, obj, form, change):
        try:
            super().save_model(request, obj, form, change)
        except ChangeRequestRequired as exc:
            data = form.cleaned_data
            proposed = {"type": SCHEMA_SET, "key": obj.key, "schema": data.get("schema"),
                        "metadata": data.get("metadata") or {}, "required": bool(data.get("required")),
                        "default_value": data.get("default_value")}
            self._offer(request, exc, proposed)
            raise

    def delete_model(self, request, obj):
        try:
            super().delete_model(request, obj)
        except ChangeRequestRequired as exc:
            self._offer(request, exc, {"type": SCHEMA_DELETE, "key": obj.key})
            raise

    def _offer(self, request, exc: ChangeRequestRequired, proposed: dict) -> None:
        url = _cr_add_url(title=f"Schema of {proposed['key']}", changes=json.dumps([proposed]))
        self.message_user(request, format_html('{} <a href="{}" class="change-request-link">Open this as a change '
                                               "request</a>.", exc.message, url), messages.ERROR)


for model, model_admin in ((ConfigEntry, ProtectedConfigEntryAdmin), (Flag, ProtectedFlagAdmin),
                           (Segment, ProtectedSegmentAdmin), (ConfigSchema, ProtectedConfigSchemaAdmin)):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)


# --- policies ---------------------------------------------------------------------------------


@admin.register(EnvironmentPolicy)
class EnvironmentPolicyAdmin(RefusedWriteMixin, admin.ModelAdmin):
    list_display = ("environment", "tenant_label", "approvals_required", "author_may_approve", "updated_by", "updated_at")
    list_filter = ("environment", "tenant")
    fields = ("tenant", "environment", "approvals_required", "author_may_approve")

    @admin.display(description="tenant", ordering="tenant__slug")
    def tenant_label(self, obj):
        return obj.tenant.slug if obj.tenant_id else "(global default)"

    def get_readonly_fields(self, request, obj=None):
        return ("tenant", "environment") if obj else ()

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def save_model(self, request, obj, form, change):
        policy_set(tenant=obj.tenant, environment=obj.environment, approvals_required=obj.approvals_required,
                   author_may_approve=obj.author_may_approve, actor=actor_of(request))
        row = EnvironmentPolicy.objects.get(tenant=obj.tenant, environment=obj.environment)
        obj.pk = row.pk


# --- change requests ---------------------------------------------------------------------------


class ChangeRequestForm(forms.ModelForm):
    changes = PrettyJSONField(widget=forms.Textarea(attrs={"rows": 12, "cols": 90, "class": "json-editor"}),
                              help_text='A list of changes: {"type": "config.set", "key", "service_name", "value", '
                                        '"is_secret"}, {"type": "config.delete", "key", "service_name"}, '
                                        '{"type": "flag.set", "name", "is_enabled", "rollout_percentage", "strategies", ...}, '
                                        '{"type": "schema.set", "key", "schema", "metadata", "required", "default_value"}, '
                                        '{"type": "schema.delete", "key"} (schemas: for who may change schemas). '
                                        f"A secret's value shows as {MASK}: leave it so to keep it.")
    draft = forms.BooleanField(required=False, help_text="Keep it a draft (not yet for review).")

    class Meta:
        model = ChangeRequest
        fields = ("tenant", "environment", "title", "description", "changes", "apply_at")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cr = self.instance
        if cr.pk:
            secrets = cr.secret_values or {}
            self.initial["changes"] = [{**c, "value": MASK} if str(i) in secrets else c for i, c in enumerate(cr.changes)]
            self.fields.pop("draft", None)
            for name in ("tenant", "environment"):
                if name in self.fields:  # a final request's page has them read-only
                    self.fields[name].disabled = True

    def clean_changes(self):
        changes = self.cleaned_data.get("changes")
        if not isinstance(changes, list):
            raise forms.ValidationError("a JSON list of changes")
        cr = self.instance
        if cr.pk:
            # A masked secret left as it was keeps its value (same target).
            stored = {(c.get("key"), c.get("service_name") or ""): (cr.secret_values or {}).get(str(i))
                      for i, c in enumerate(cr.changes) if str(i) in (cr.secret_values or {})}
            for change in changes:
                if isinstance(change, dict) and change.get("value") == MASK:
                    target = (change.get("key"), change.get("service_name") or "")
                    if target not in stored:
                        raise forms.ValidationError(f"{target[0]}: enter the value ({MASK} stands for a stored secret)")
                    change["value"] = stored[target]
        return changes


@admin.register(ChangeRequest)
class ChangeRequestAdmin(admin.ModelAdmin):
    form = ChangeRequestForm
    list_display = ("id", "title", "tenant", "environment", "status", "author", "apply_at", "updated_at")
    list_filter = ("status", "environment", "tenant")
    search_fields = ("title", "author")
    list_select_related = ("tenant", "environment")
    change_form_template = "admin/changes/changerequest/change_form.html"
    ACTIONS = ("submit", "approve", "decline", "apply", "cancel", "refresh")

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        if "changes" in request.GET:
            try:
                initial["changes"] = json.loads(request.GET["changes"])
            except ValueError:
                initial.pop("changes", None)
        return initial

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status not in (ChangeRequest.DRAFT, ChangeRequest.OPEN, ChangeRequest.APPROVED,
                                                  ChangeRequest.SCHEDULED):
            return ("tenant", "environment", "title", "description", "apply_at", "shown_changes")
        return ()

    def get_fields(self, request, obj=None):
        if obj is not None and "shown_changes" in self.get_readonly_fields(request, obj):
            return ("tenant", "environment", "title", "description", "apply_at", "shown_changes")
        fields = super().get_fields(request, obj)
        return [f for f in fields if f != "draft"] if obj is not None else fields

    @admin.display(description="changes")
    def shown_changes(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(selectors.change_request_out(obj, review=False)["changes"], indent=2,
                                                       ensure_ascii=False))

    def has_delete_permission(self, request, obj=None):
        return False  # the record of what was asked, reviewed and applied stays

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        actor, uid = actor_of(request), request.user.pk
        keys = secrets_made_plain(tenant=obj.tenant, environment=obj.environment, changes=data.get("changes"))
        if keys and not request.user.has_perm("tenants.reveal_secret"):
            raise Forbidden(f"making secrets plain ({', '.join(keys)}) needs the permission to reveal secrets",
                            code="secrets_read_required")
        may_change_schemas(request, data.get("changes"))
        if not change:
            created = svc.change_request_create(
                tenant=data["tenant"], environment=data["environment"], title=data["title"],
                description=data.get("description") or "", changes=data["changes"], apply_at=data.get("apply_at"),
                draft=bool(data.get("draft")), actor=actor, user_id=uid)
            obj.pk = created.pk
            return
        kwargs = {}
        if "apply_at" in form.changed_data:
            kwargs["apply_at"] = data.get("apply_at")
        svc.change_request_update(
            change_request=ChangeRequest.objects.get(pk=obj.pk), actor=actor, user_id=uid,
            title=data["title"] if "title" in form.changed_data else None,
            description=data.get("description") if "description" in form.changed_data else None,
            changes=data["changes"] if "changes" in form.changed_data else None, **kwargs)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method == "POST" and object_id and request.POST.get("_cr_action") in self.ACTIONS:
            return self._act(request, object_id, request.POST["_cr_action"])
        extra_context = dict(extra_context or {})
        if object_id:
            cr = selectors.change_request_get(change_request_id=object_id)
            if cr is not None:
                reveal = request.user.has_perm("tenants.reveal_secret")
                out = selectors.change_request_out(cr, reveal=False)
                extra_context["review"] = review_rows(out)
                extra_context["cr"] = out
                extra_context["may_approve"] = may_approve(change_request=cr, user=request.user)
                extra_context["reveal"] = reveal
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as exc:
            self.message_user(request, f"Not saved: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def _act(self, request, object_id, action: str):
        cr = ChangeRequest.objects.select_related("tenant", "environment").filter(pk=object_id).first()
        if cr is None or not self.has_view_permission(request, cr):
            raise PermissionDenied
        if action not in ("approve", "decline") and not self.has_change_permission(request, cr):
            raise PermissionDenied
        actor, uid = actor_of(request), request.user.pk
        comment = request.POST.get("comment", "")[:2000]
        try:
            if action == "submit":
                svc.change_request_update(change_request=cr, actor=actor, user_id=uid, open_it=True)
            elif action == "approve":
                svc.change_request_approve(change_request=cr, actor=actor, user_id=uid, user=request.user, comment=comment)
            elif action == "decline":
                svc.change_request_decline(change_request=cr, actor=actor, user_id=uid, user=request.user, comment=comment)
            elif action == "apply":
                may_change_schemas(request, cr.changes)
                svc.change_request_apply(change_request=cr, actor=actor, user_id=uid)
            elif action == "cancel":
                svc.change_request_cancel(change_request=cr, actor=actor, user_id=uid)
            else:
                svc.change_request_refresh(change_request=cr, actor=actor, user_id=uid)
        except DomainError as exc:
            self.message_user(request, f"Not done: {exc.message}", messages.ERROR)
        else:
            cr.refresh_from_db()
            self.message_user(request, f"Change request #{cr.pk}: {action} done, now {cr.status}.")
        return HttpResponseRedirect(reverse("admin:changes_changerequest_change", args=[cr.pk]))
