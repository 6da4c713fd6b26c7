"""Admin pieces every app's admin shares: who acts and why, JSON fields, deletes
through the services, secrets shown once, history shown as JSON."""
from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.db import models, router, transaction
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from simple_history.template_utils import HistoricalRecordContextHelper

from core.audit import REASON_MAX, change_reason
from core.errors import DomainError
from core.jsonvalue import validate_json_value

MASK = "••••••••"


def actor_of(request) -> str:
    return f"user:{request.user.get_username()}"


class PrettyJSONField(forms.JSONField):
    def to_python(self, value):
        try:
            parsed = super().to_python(value)
        except RecursionError:  # the standard decoder recurses per nesting level
            raise forms.ValidationError("Enter valid JSON: it is nested too deeply.", code="invalid") from None
        try:
            validate_json_value(parsed)  # the API's rule: depth, size, valid Unicode
        except DomainError as exc:
            raise forms.ValidationError(exc.message, code="invalid") from None
        return parsed

    def bound_data(self, data, initial):
        try:
            return super().bound_data(data, initial)
        except RecursionError:  # redisplay what the operator typed, as Django does for bad JSON
            return forms.fields.InvalidJSONInput(data)

    def prepare_value(self, value):
        if isinstance(value, str) and value == MASK:
            return value
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False) if value is not None else "null"


CHANGE_REASON = "change_reason"


class ChangeReasonMixin:
    """Every add and change form (a revert from the history too) ends with an optional
    "Change reason"; the save runs inside :func:`core.audit.change_reason`, so the
    history rows it writes keep the reason (``history_change_reason``) and its event
    carries it (``data["reason"]``). A delete posts no form: its reason is empty.

    Added to the form class given to ``ModelAdmin.get_form`` (so ``fields`` lists may
    name it) and listed last by ``get_fields``; a user who may only view gets none."""

    def get_form(self, request, obj=None, change=False, **kwargs):
        base = kwargs.get("form", self.form)
        if CHANGE_REASON not in getattr(base, "base_fields", {}):
            field = forms.CharField(
                label="Change reason", required=False, max_length=REASON_MAX,
                help_text="Why (kept in the history and the change's event).",
                widget=forms.TextInput(attrs={"size": 60, "placeholder": "e.g. ticket OPS-123: raise the pool size"}))
            kwargs["form"] = type(base.__name__, (base,), {CHANGE_REASON: field})
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request, obj=None):
        fields = [f for f in super().get_fields(request, obj) if f != CHANGE_REASON]
        editable = self.has_change_permission(request, obj) if obj is not None else self.has_add_permission(request)
        return [*fields, CHANGE_REASON] if editable else fields

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        with change_reason(request.POST.get(CHANGE_REASON) if request.method == "POST" else None):
            return super().changeform_view(request, object_id, form_url, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        with change_reason(request.POST.get(CHANGE_REASON) if request.method == "POST" else None):
            return super().history_form_view(request, object_id, version_id, extra_context)


class JSONHistoryHelper(HistoricalRecordContextHelper):
    """History changes shown as JSON (``{"a": 1}``, ``true``, ``null``), never as
    Python's repr (``{'a': 1}``, ``True``, ``None``)."""

    def prepare_delta_change_value(self, change, value):
        field = self.model._meta.get_field(change.field)
        if isinstance(field, models.JSONField) or isinstance(value, bool) or value is None:
            return json.dumps(value, ensure_ascii=False)
        return super().prepare_delta_change_value(change, value)


class HistoryDisplayMixin:
    """For ``SimpleHistoryAdmin``s: the history list of templates/simple_history
    (dates linking to their version, human column names, changes as JSON).
    ``history_columns``: extra ``(attribute, label)`` columns of the historical rows."""

    history_columns: tuple[tuple[str, str], ...] = ()

    def get_historical_record_context_helper(self, request, historical_record):
        return JSONHistoryHelper(self.model, historical_record)

    def history_view(self, request, object_id, extra_context=None):
        return super().history_view(request, object_id, {**(extra_context or {}), "history_columns": self.history_columns})


class ServiceDeleteMixin:
    """Deletes go through the admin's ``delete_model`` (a service call), one by one
    for the changelist's bulk delete too.

    A service refusing (``DomainError``: the built-in tenant, an environment or a
    segment still in use...) rolls back the whole request, the admin's log entry
    included, and is shown to the operator as an error message instead of a 500.
    """

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except DomainError as exc:  # raised inside the view's atomic block: nothing was written
            self.message_user(request, f"Not deleted: {exc.message}", messages.ERROR)
            opts = self.model._meta
            return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[object_id],
                                                current_app=self.admin_site.name))

    def changelist_view(self, request, extra_context=None):
        if not (request.method == "POST" and request.POST.get("action") == "delete_selected" and request.POST.get("post")):
            return super().changelist_view(request, extra_context)
        try:
            with transaction.atomic(using=router.db_for_write(self.model)):
                return super().changelist_view(request, extra_context)
        except DomainError as exc:
            self.message_user(request, f"Nothing was deleted: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class ShownOnceMixin:
    """For admins whose add creates a secret (an API key, a webhook signing secret):
    ``save_model`` puts it on ``request._shown_once`` and the page answering the add
    shows it, once. It is in that response only, never in a message (the default
    message storage carries messages in a cookie) nor in the session."""

    shown_once_title = "Created"
    shown_once_label = "secret"
    shown_once_element_id = "shown-once"

    def response_add(self, request, obj, post_url_continue=None):
        value = getattr(request, "_shown_once", None)
        if value is None:
            return super().response_add(request, obj, post_url_continue)
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "title": self.shown_once_title, "opts": opts, "object": obj, "label": self.shown_once_label,
            "value": value, "element_id": self.shown_once_element_id,
            "change_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk], current_app=self.admin_site.name),
            "changelist_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist", current_app=self.admin_site.name),
        }
        response = TemplateResponse(request, "admin/shown_once.html", context)
        response["Cache-Control"] = "no-store"
        return response
