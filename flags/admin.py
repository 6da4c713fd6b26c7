"""Flags in the admin: per-environment state inline, bulk enable/disable/rollout, a preview.

Every save goes through flags.services, exactly as the API's writes do.
"""
from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.shortcuts import render
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from core.admin import ChangeReasonMixin, HistoryDisplayMixin, PrettyJSONField, ServiceDeleteMixin, actor_of
from core.errors import DomainError, ValidationFailed
from tenants.models import Environment
from tenants.roles_admin import RoleScopedAdminMixin

from .engine import compile_state
from .history import flag_version, flag_versions, rollout_text
from .models import Flag, FlagEnvironment, Segment, flag_name_validator
from .selectors import flag_state_document
from .services.flags import flag_create, flag_delete, flag_revert, flag_update, flags_bulk_set
from .services.segments import segment_delete, segment_set
from .strategy_form import FlagEnvironmentForm
from .validation import flag_validate, segment_validate


class FlagEnvironmentInline(admin.StackedInline):
    model = FlagEnvironment
    form = FlagEnvironmentForm
    extra = 0
    can_delete = False  # a flag's state is switched off, not deleted (no service deletes one)
    readonly_fields = ("version", "evaluation_count", "last_evaluated_at")
    fieldsets = [
        (None, {"fields": ("environment", "enabled", ("version", "evaluation_count", "last_evaluated_at"))}),
        ("Strategy", {"fields": ("strategy_type", "rollout", "stickiness", "group_id", "user_ids", "constraints"),
                      "classes": ("strategy-fields",)}),
        ("Raw strategies", {"fields": ("strategies",), "classes": ("collapse",)}),
    ]

    class Media:
        js = ("config_hub/json-editor.js", "config_hub/flag-strategy.js")


class FlagForm(forms.ModelForm):
    variants = PrettyJSONField(required=False, widget=forms.Textarea(attrs={"rows": 5, "cols": 70, "class": "json-editor"}))
    dependencies = PrettyJSONField(required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 70, "class": "json-editor"}))

    class Meta:
        model = Flag
        fields = ("tenant", "name", "description", "kind", "default_environment", "variants", "dependencies")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "name" in self.fields:  # read-only on change
            self.fields["name"].validators.append(flag_name_validator)

    def clean(self):
        cleaned = super().clean()
        try:
            flag_validate(name=cleaned.get("name") or "f", strategies=None, variants=cleaned.get("variants") or [],
                          dependencies=cleaned.get("dependencies") or [], segment_ids=None)
        except ValidationFailed as exc:
            self.add_error("variants" if "variant" in exc.message else "dependencies", exc.message)
        return cleaned


class BulkForm(forms.Form):
    environment = forms.ModelChoiceField(queryset=Environment.objects.all())
    rollout_percentage = forms.FloatField(required=False, min_value=0, max_value=100)


@admin.register(Flag)
class FlagAdmin(RoleScopedAdminMixin, HistoryDisplayMixin, ChangeReasonMixin, ServiceDeleteMixin, SimpleHistoryAdmin):
    form = FlagForm
    inlines = [FlagEnvironmentInline]
    list_display = ("name", "tenant", "kind", "states", "version", "updated_at")
    list_filter = ("tenant", "kind", ("states__environment", admin.RelatedOnlyFieldListFilter))
    search_fields = ("name", "description")
    actions = ["bulk_enable", "bulk_disable", "bulk_rollout"]
    change_form_template = "admin/flags/flag/change_form.html"
    object_history_form_template = "admin/flags/flag/object_history_form.html"

    def set_history_delta_changes(self, request, historical_records, foreign_keys_are_objs=True):
        # What changed per version, the environments' states included (flags.history),
        # not only the flag row's own fields.
        records = list(historical_records)
        if not records:
            return
        changes = {v.history_id: v.changes for v in flag_versions(flag_id=records[0].id)}
        for record in records:
            record.history_delta_changes = changes.get(record.history_id, [])

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        # The revert page shows every environment's state of that version, and
        # save_model reverts through flag_revert (the states too, not only the flag row).
        request._history_version_id = version_id
        version = flag_version(flag_id=int(object_id), history_id=int(version_id))
        states = [{"environment": version.environments[env_id], "enabled": state["enabled"],
                   "rollout": rollout_text(state["strategies"]),
                   "strategies_text": json.dumps(state["strategies"], ensure_ascii=False)}
                  for env_id, state in sorted(version.states.items(), key=lambda kv: version.environments[kv[0]])]
        extra_context = {**(extra_context or {}), "revert_version": version, "revert_states": states}
        return super().history_form_view(request, object_id, version_id, extra_context)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("tenant").prefetch_related("states__environment")

    # Roles: the flag's page saves the flag itself (variants, dependencies: every
    # environment) with its states, so it is editable for who may write in every
    # environment of its tenant (role_scope: the tenant, every environment). An
    # editor of one environment changes that state through the API.
    def role_scope_of_form(self, cleaned):
        return cleaned.get("tenant"), cleaned.get("default_environment")

    def get_readonly_fields(self, request, obj=None):
        # Clients address a flag by tenant and name: flag_update changes neither.
        return ("tenant", "name") if obj else ()

    def delete_model(self, request, obj):
        # Through the service: event, audit actor, and the tenant's flag generation
        # bumped after commit so evaluation forgets the flag at once.
        flag_delete(flag=obj, actor=actor_of(request), user_id=request.user.pk)

    @admin.display(description="environments")
    def states(self, obj):
        parts = []
        for fe in obj.states.all():
            pct = fe.rollout_percentage
            colour = "#2e7d32" if fe.enabled else "#999"
            label = f"{fe.environment.slug}: {'on' if fe.enabled else 'off'}" + (f" {pct:g}%" if fe.enabled and pct is not None else "")
            parts.append(format_html('<span style="color:{}">{}</span>', colour, label))
        return format_html(" · ".join(["{}"] * len(parts)), *parts) if parts else "-"

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        version_id = getattr(request, "_history_version_id", None)
        if change and version_id is not None:
            flag_revert(flag=Flag.objects.get(pk=obj.pk), history_id=int(version_id), actor=actor_of(request),
                        user_id=request.user.pk)
            return
        if change and not [name for name in form.changed_data if name != "change_reason"]:
            return  # only the states changed (save_formset): no empty flag version before theirs
        if change:
            flag_update(flag=obj, description=data.get("description"), kind=data.get("kind"),
                                 variants=data.get("variants") or [], dependencies=data.get("dependencies") or [],
                                 actor=actor_of(request), user_id=request.user.pk)
        else:
            created = flag_create(
                tenant=data["tenant"], name=data["name"], description=data.get("description", ""), kind=data.get("kind", "boolean"),
                variants=data.get("variants") or [], dependencies=data.get("dependencies") or [],
                environment=data.get("default_environment"), actor=actor_of(request), user_id=request.user.pk,
            )
            obj.pk = created.pk

    def save_formset(self, request, form, formset, change):
        flag = form.instance
        # What formset.save() would have left for the admin's change message (the log entry).
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for inline in formset.forms:
            if not inline.has_changed() or not inline.cleaned_data:
                continue
            data = inline.cleaned_data
            if data.get("DELETE"):
                continue
            try:
                flag_update(flag=Flag.objects.get(pk=flag.pk), environment=data["environment"],
                                     is_enabled=data.get("enabled", False), strategies=data.get("strategies") or [],
                                     actor=actor_of(request), user_id=request.user.pk)
            except DomainError as exc:
                messages.error(request, f"{data['environment']}: {exc.message}")
            else:
                if inline.instance.pk:
                    formset.changed_objects.append((inline.instance, inline.changed_data))
                else:
                    formset.new_objects.append(inline.instance)

    def _bulk(self, request, queryset, *, title: str, enable: bool | None, rollout: bool):
        if "apply" in request.POST:
            form = BulkForm(request.POST)
            if form.is_valid():
                pct = form.cleaned_data.get("rollout_percentage") if rollout else None
                if rollout and pct is None:
                    form.add_error("rollout_percentage", "Enter a percentage.")
                else:
                    try:
                        n = flags_bulk_set(flags=list(queryset), environment=form.cleaned_data["environment"],
                                                    is_enabled=enable, rollout_percentage=pct, actor=actor_of(request),
                                                    user_id=request.user.pk)
                    except DomainError as exc:
                        self.message_user(request, exc.message, level=messages.ERROR)
                        return None
                    self.message_user(request, f"{title}: {n} flag(s) in {form.cleaned_data['environment']}.")
                    return None
        else:
            form = BulkForm()
        return render(request, "admin/flags/bulk_action.html", {
            **self.admin_site.each_context(request), "title": title, "form": form, "flags": queryset,
            "action": request.POST.get("action"), "rollout": rollout, "opts": self.model._meta,
        })

    @admin.action(description="Enable selected flags in an environment")
    def bulk_enable(self, request, queryset):
        return self._bulk(request, queryset, title="Enable", enable=True, rollout=False)

    @admin.action(description="Disable selected flags in an environment")
    def bulk_disable(self, request, queryset):
        return self._bulk(request, queryset, title="Disable", enable=False, rollout=False)

    @admin.action(description="Set rollout percentage of selected flags")
    def bulk_rollout(self, request, queryset):
        return self._bulk(request, queryset, title="Set rollout", enable=None, rollout=True)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        flag = Flag.objects.filter(pk=object_id).first()
        if flag is not None:
            env = request.GET.get("preview_environment") or (flag.default_environment.slug if flag.default_environment else "")
            raw = request.GET.get("preview_context", '{"userId": "user-1"}')
            extra_context.update({"environments": Environment.objects.all(), "preview_environment": env, "preview_context": raw})
            if "preview_environment" in request.GET:
                try:
                    ctx = json.loads(raw or "{}")
                    if not isinstance(ctx, dict):
                        raise ValueError("the context must be a JSON object")
                    ctx.setdefault("environment", env)
                    result = compile_state(flag_state_document(tenant_id=flag.tenant_id, environment=env)).evaluate(flag.name, ctx)
                    extra_context["preview"] = {"enabled": result.enabled, "variant": result.variant, "reason": result.reason}
                except ValueError as exc:
                    extra_context["preview_error"] = str(exc)
                except RecursionError:
                    extra_context["preview_error"] = "the context is nested too deeply"
        return super().change_view(request, object_id, form_url, extra_context)


class SegmentForm(forms.ModelForm):
    constraints = PrettyJSONField(required=False, widget=forms.Textarea(attrs={"rows": 8, "cols": 70, "class": "json-editor"}))

    class Meta:
        model = Segment
        fields = ("tenant", "name", "description", "constraints")

    def clean_constraints(self):
        value = self.cleaned_data.get("constraints") or []
        try:  # the service's rule, on the form rather than a 500
            segment_validate(name=self.cleaned_data.get("name") or self.instance.name, constraints=value)
        except ValidationFailed as exc:
            raise forms.ValidationError(exc.message) from exc
        return value


@admin.register(Segment)
class SegmentAdmin(RoleScopedAdminMixin, HistoryDisplayMixin, ChangeReasonMixin, ServiceDeleteMixin, SimpleHistoryAdmin):
    form = SegmentForm
    role_form_field = "tenant"  # a segment is used in every environment
    list_display = ("name", "tenant", "updated_at")
    list_filter = ("tenant",)

    def get_readonly_fields(self, request, obj=None):
        # segment_set addresses a segment by (tenant, name): renaming would create another.
        return ("tenant", "name") if obj else ()

    def save_model(self, request, obj, form, change):
        seg = segment_set(tenant=obj.tenant, name=obj.name, constraints=obj.constraints or [],
                                   description=obj.description, actor=actor_of(request), user_id=request.user.pk)
        obj.pk = seg.pk

    def delete_model(self, request, obj):
        # Refused while a flag state's strategy names the segment (see segment_delete).
        segment_delete(segment=obj, actor=actor_of(request), user_id=request.user.pk)
