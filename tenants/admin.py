"""Operators' daily work: tenants, environments, configs (validated, secrets masked),
schemas and API keys. Every save goes through tenants.services, exactly as the API."""
from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from core.admin import MASK, ChangeReasonMixin, HistoryDisplayMixin, PrettyJSONField, ServiceDeleteMixin, ShownOnceMixin, actor_of
from core.api.principal import ALL_SCOPES
from core.errors import DomainError, ValidationFailed

from .history import secret_aware_history_helper
from .models import ApiKey, ConfigEntry, ConfigSchema, Environment, Tenant
from .roles_admin import RoleScopedAdminMixin  # registers the role assignments' admin too
from .schemas import config_validate, schema_validate
from .selectors import config_resolve
from .services.api_keys import api_key_create, api_key_delete, api_key_revoke, api_key_update
from .services.configs import config_create, config_delete, config_reveal, config_revert, config_secrecy_check, config_update
from .services.environments import environment_create, environment_delete, environment_update
from .services.schemas import schema_delete, schema_set
from .services.tenants import tenant_create, tenant_delete, tenant_update


def can_reveal(user) -> bool:
    return user.has_perm("tenants.reveal_secret")


class MaskedJSONField(PrettyJSONField):
    """A config entry's value: a secret shown masked posts the mask back untouched,
    which means "keep the value" (``ConfigEntryForm.clean``), not JSON to parse."""

    def to_python(self, value):
        if isinstance(value, str) and value.strip() == MASK:
            return MASK
        return super().to_python(value)

    def bound_data(self, data, initial):
        if isinstance(data, str) and data.strip() == MASK:
            return MASK
        return super().bound_data(data, initial)


def _domain_error_to_form(form: forms.Form, field: str, exc: DomainError) -> None:
    details = exc.details
    if isinstance(details, list) and details and isinstance(details[0], dict) and "path" in details[0]:
        for item in details:
            form.add_error(field, f"{item['path']}: {item['message']}")
    elif isinstance(details, dict) and "breaking_values" in details:
        form.add_error(field, exc.message)
        for item in details["breaking_values"]:
            scope = f"tenant={item['tenant'] or 'global'} env={item['environment'] or '*'} service={item['service_name'] or '*'}"
            for err in item["errors"]:
                form.add_error(field, f"entry #{item['id']} ({scope}) {err['path']}: {err['message']}")
    else:
        form.add_error(field if field in form.fields else None, exc.message)


# --- tenants and environments ----------------------------------------------------


@admin.register(Tenant)
class TenantAdmin(HistoryDisplayMixin, ChangeReasonMixin, ServiceDeleteMixin, SimpleHistoryAdmin):
    list_display = ("slug", "name", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("slug", "name")

    def get_readonly_fields(self, request, obj=None):
        return ("slug",) if obj else ()

    def save_model(self, request, obj, form, change):
        if change:
            tenant_update(tenant=obj, name=obj.name, is_active=obj.is_active, actor=actor_of(request))
        else:
            created = tenant_create(slug=obj.slug, name=obj.name, is_active=obj.is_active, actor=actor_of(request))
            obj.pk = created.pk

    def delete_model(self, request, obj):
        tenant_delete(tenant=obj, actor=actor_of(request))


@admin.register(Environment)
class EnvironmentAdmin(HistoryDisplayMixin, ChangeReasonMixin, ServiceDeleteMixin, SimpleHistoryAdmin):
    list_display = ("slug", "name", "created_at")

    def get_readonly_fields(self, request, obj=None):
        return ("slug",) if obj else ()

    def save_model(self, request, obj, form, change):
        if change:
            environment_update(environment=obj, name=obj.name, actor=actor_of(request), user_id=request.user.pk)
        else:
            created = environment_create(slug=obj.slug, name=obj.name, actor=actor_of(request))
            obj.pk = created.pk

    def delete_model(self, request, obj):
        environment_delete(environment=obj, actor=actor_of(request), user_id=request.user.pk)


# --- configs ---------------------------------------------------------------------------


class ConfigEntryForm(forms.ModelForm):
    value = MaskedJSONField(required=False, help_text="Any JSON value: object, list, string (quoted), number, true/false, null.",
                            widget=forms.Textarea(attrs={"rows": 12, "cols": 80, "class": "json-editor"}))

    class Meta:
        model = ConfigEntry
        fields = ("tenant", "environment", "service_name", "key", "is_secret", "value", "description")

    def __init__(self, *args, reveal: bool = False, may_reveal: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.reveal = reveal
        self.may_reveal = may_reveal
        instance = self.instance
        if instance.pk and instance.is_secret:
            self.initial["value"] = instance.secret_value if reveal else MASK
        if instance.pk:
            for name in ("tenant", "environment", "service_name", "key"):
                if name in self.fields:  # a view-only user's form has no fields
                    self.fields[name].disabled = True

    def clean_value(self):
        raw = self.data.get(self.add_prefix("value"), "")
        if raw.strip() == MASK:
            return MASK
        return self.cleaned_data.get("value")

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk:
            try:
                config_secrecy_check(entry=self.instance, is_secret=cleaned.get("is_secret"),
                                              can_read_secrets=self.may_reveal)
            except DomainError as exc:
                self.add_error("is_secret", exc.message)
        value = cleaned.get("value")
        if value == MASK:
            if not self.instance.pk or not self.instance.is_secret:
                self.add_error("value", "Enter a value.")
            return cleaned
        key = cleaned.get("key") or self.instance.key
        if key and "value" not in self._errors:
            try:
                config_validate(key=key, value=value, is_secret=bool(cleaned.get("is_secret")))
            except DomainError as exc:
                _domain_error_to_form(self, "value", exc)
        return cleaned


@admin.register(ConfigEntry)
class ConfigEntryAdmin(RoleScopedAdminMixin, HistoryDisplayMixin, ChangeReasonMixin, ServiceDeleteMixin, SimpleHistoryAdmin):
    form = ConfigEntryForm

    def get_historical_record_context_helper(self, request, historical_record):
        # A secret's value changes show as "changed", never the values
        # (also for rows written before the entry became secret).
        return secret_aware_history_helper(ConfigEntry, historical_record)
    list_display = ("key", "tenant_label", "environment", "service_label", "shown_value", "is_secret", "version", "updated")
    list_filter = ("tenant", "environment", "service_name", "is_secret")
    search_fields = ("key", "service_name", "description")
    list_select_related = ("tenant", "environment")
    readonly_fields = ("version", "created_at", "updated_at")
    change_form_template = "admin/tenants/configentry/change_form.html"

    class Media:
        js = ("config_hub/json-editor.js",)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        entry = ConfigEntry.objects.select_related("tenant", "environment").filter(pk=object_id).first()
        reveal = can_reveal(request.user)
        if entry is not None:
            if entry.is_secret and reveal and request.GET.get("reveal") == "1" and request.method == "GET":
                config_reveal(entry=entry, actor=actor_of(request), user_id=request.user.pk)
                extra_context["revealed"] = True
            extra_context["can_reveal"] = reveal
            tenant = entry.tenant
            if tenant is not None:
                res = config_resolve(tenant=tenant, key=entry.key, environment=entry.environment.slug if entry.environment_id else None,
                                     service_name=entry.service_name, explain=True, reveal=reveal and request.GET.get("reveal") == "1")
                masked = res.is_secret and not (reveal and request.GET.get("reveal") == "1")
                extra_context["resolution"] = {
                    "source": res.source,
                    "value_text": MASK if masked else json.dumps(res.value, ensure_ascii=False),
                    "chain": [{**c, "text": MASK if c.get("masked") else json.dumps(c.get("value"), ensure_ascii=False)} for c in res.chain],
                }
        return super().change_view(request, object_id, form_url, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        # simple-history routes this view by a regex with positional groups: the
        # version is in no URL kwarg, so it is handed to save_model here.
        request._history_version_id = version_id
        return super().history_form_view(request, object_id, version_id, extra_context)

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return qs if can_reveal(request.user) else qs.defer("secret_value")

    @admin.display(description="tenant", ordering="tenant__slug")
    def tenant_label(self, obj):
        return obj.tenant.slug if obj.tenant_id else "(global)"

    @admin.display(description="service", ordering="service_name")
    def service_label(self, obj):
        return obj.service_name or "(all)"

    @admin.display(description="value")
    def shown_value(self, obj):
        if obj.is_secret:
            return MASK
        text = json.dumps(obj.value, ensure_ascii=False)
        return text if len(text) < 60 else text[:57] + "…"

    @admin.display(description="updated", ordering="updated_at")
    def updated(self, obj):
        return f"{obj.updated_at:%Y-%m-%d %H:%M}"

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)
        may_reveal = can_reveal(request.user)
        reveal = may_reveal and request.GET.get("reveal") == "1"

        class Form(form_class):
            def __init__(self, *args, **kw):
                kw["reveal"] = reveal
                kw["may_reveal"] = may_reveal
                super().__init__(*args, **kw)

        return Form

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        actor, uid = actor_of(request), request.user.pk
        version_id = getattr(request, "_history_version_id", None)
        if change and version_id is not None:
            # simple-history's "Revert" posts the old version's form: it goes
            # through the revert service (validated, audited, announced).
            config_revert(
                entry=ConfigEntry.objects.select_related("tenant", "environment").get(pk=obj.pk),
                history_id=int(version_id), actor=actor, user_id=uid,
            )
            return
        if change and not [name for name in form.changed_data if name != "change_reason"]:
            # Saved as it was: no new version, no event, no history row.
            return
        try:
            if change:
                kwargs = {}
                if data["value"] != MASK:
                    kwargs["value"] = data["value"]
                config_update(
                    entry=ConfigEntry.objects.select_related("tenant", "environment").get(pk=obj.pk),
                    description=data.get("description", ""), is_secret=data.get("is_secret"),
                    actor=actor, user_id=uid, can_read_secrets=can_reveal(request.user), **kwargs,
                )
            else:
                created = config_create(
                    tenant=data.get("tenant"), key=data["key"], value=data["value"], environment=data.get("environment"),
                    service_name=data.get("service_name") or "", description=data.get("description", ""),
                    is_secret=bool(data.get("is_secret")), actor=actor, user_id=uid,
                )
                obj.pk = created.pk
        except DomainError as exc:
            # Validation already ran in the form; a race (409/412) lands here.
            messages.error(request, exc.message)
            raise ValidationError(exc.message) from exc

    def delete_model(self, request, obj):
        config_delete(entry=obj, actor=actor_of(request), user_id=request.user.pk)

    def delete_queryset(self, request, queryset):
        for obj in queryset.select_related("tenant", "environment"):
            self.delete_model(request, obj)


# --- schemas ------------------------------------------------------------------------------


class ConfigSchemaForm(forms.ModelForm):
    schema = PrettyJSONField(widget=forms.Textarea(attrs={"rows": 14, "cols": 80, "class": "json-editor"}))
    metadata = PrettyJSONField(required=False, widget=forms.Textarea(attrs={"rows": 4, "cols": 80, "class": "json-editor"}))
    default_value = PrettyJSONField(required=False, widget=forms.Textarea(attrs={"rows": 6, "cols": 80, "class": "json-editor"}))
    class Meta:
        model = ConfigSchema
        fields = ("key", "schema", "metadata", "required", "default_value")

    def clean(self):
        cleaned = super().clean()
        if self._errors:
            return cleaned
        # The service's own rule (schema_set calls it too), so errors land on the form, not a 500.
        try:
            schema_validate(key=cleaned.get("key") or self.instance.key, schema=cleaned.get("schema"),
                            metadata=cleaned.get("metadata"), default_value=cleaned.get("default_value"))
        except ValidationFailed as exc:
            _domain_error_to_form(self, getattr(exc, "field", "schema"), exc)
        return cleaned


@admin.register(ConfigSchema)
class ConfigSchemaAdmin(RoleScopedAdminMixin, HistoryDisplayMixin, ChangeReasonMixin, ServiceDeleteMixin, SimpleHistoryAdmin):
    form = ConfigSchemaForm
    role_form_field = "key"  # a schema holds for every tenant and environment

    class Media:
        js = ("config_hub/json-editor.js",)
    list_display = ("key", "required", "version", "updated_at")
    search_fields = ("key",)
    readonly_fields = ("version",)

    def get_readonly_fields(self, request, obj=None):
        return ("key", "version") if obj else ("version",)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        saved, _ = schema_set(
            key=obj.key, schema=data["schema"], metadata=data.get("metadata") or {}, required=data.get("required", False),
            default_value=data.get("default_value"), actor=actor_of(request), user_id=request.user.pk,
        )
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        schema_delete(key=obj.key, actor=actor_of(request), user_id=request.user.pk)


# --- API keys ------------------------------------------------------------------------------


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=[(s, s) for s in sorted(ALL_SCOPES)], widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ("name", "tenant", "environment", "scopes", "expires_at")


@admin.register(ApiKey)
class ApiKeyAdmin(HistoryDisplayMixin, ChangeReasonMixin, ShownOnceMixin, ServiceDeleteMixin, SimpleHistoryAdmin):
    shown_once_title, shown_once_label, shown_once_element_id = "API key created", "API key", "new-api-key"
    form = ApiKeyForm
    list_display = ("name", "prefix", "tenant_label", "environment", "scope_list", "state", "last_used_at", "expires_at")
    list_filter = ("tenant", "environment")
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "created_at", "created_by", "last_used_at", "revoked_at")
    actions = ["revoke"]

    @admin.display(description="tenant")
    def tenant_label(self, obj):
        return obj.tenant.slug if obj.tenant_id else "(all tenants)"

    @admin.display(description="scopes")
    def scope_list(self, obj):
        return ", ".join(obj.scopes)

    @admin.display(description="state")
    def state(self, obj):
        if obj.revoked_at:
            return format_html('<span style="color:#ba2121">revoked</span>')

        if obj.expires_at and obj.expires_at <= timezone.now():
            return format_html('<span style="color:#ba2121">expired</span>')
        return format_html('<span style="color:#2e7d32">active</span>')

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            api_key_update(
                api_key=obj, actor=actor_of(request), user_id=request.user.pk,
                name=data["name"], tenant=data.get("tenant"), environment=data.get("environment"),
                scopes=list(data["scopes"]), expires_at=data.get("expires_at"),
            )
            return
        row, raw = api_key_create(
            name=data["name"], tenant=data.get("tenant"), scopes=list(data["scopes"]),
            environment=data.get("environment"), expires_at=data.get("expires_at"),
            actor=actor_of(request), created_by_id=request.user.pk,
        )
        obj.pk = row.pk
        request._shown_once = raw  # shown by response_add in the page itself, once


    def delete_model(self, request, obj):
        # Through the service: the key's cached principal is dropped at once.
        api_key_delete(api_key=obj, actor=actor_of(request), user_id=request.user.pk)

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request, queryset):
        for key in queryset:
            api_key_revoke(api_key=key, actor=actor_of(request), user_id=request.user.pk)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")

