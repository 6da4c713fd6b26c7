"""The admin of releases: read-only releases (created through the service), a compare
page for any two, and pins (added and removed through the services)."""
from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from core.admin import MASK, ServiceDeleteMixin, actor_of
from core.errors import DomainError

from .models import Pin, Release
from .rollback import release_rollback
from .selectors import release_values, releases_compare
from .services import release_create, release_name_check, release_pin, release_unpin

REVEAL = "tenants.reveal_secret"


class ReleaseAddForm(forms.ModelForm):
    class Meta:
        model = Release
        fields = ["tenant", "environment", "name"]

    def clean_name(self):
        try:
            return release_name_check(self.cleaned_data.get("name"))
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from None


def _shown(value, *, masked: bool) -> str:
    return MASK if masked else json.dumps(value, ensure_ascii=False)


@admin.register(Release)
class ReleaseAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "environment", "short_digest", "created_by", "created_at")
    list_filter = ("environment", "tenant")
    search_fields = ("name", "digest")
    actions = ["snapshot_again", "compare_selected", "rollback_to_selected"]
    readonly_fields = ("name", "tenant", "environment", "digest", "created_by", "created_at", "pinned_services",
                       "values", "flag_states")
    fields = readonly_fields

    @admin.display(description="digest")
    def short_digest(self, obj: Release) -> str:
        return obj.digest[:12]

    @admin.display(description="pinned services")
    def pinned_services(self, obj: Release) -> str:
        return ", ".join(obj.pins.order_by("service_name").values_list("service_name", flat=True)) or "—"

    @admin.display(description="resolved values (the tenant)")
    def values(self, obj: Release):
        rows = release_values(release=obj, service="", reveal=False)
        return format_html('<table id="release-values">{}</table>', format_html_join(
            "", "<tr><td>{}</td><td><code>{}</code></td><td><small>{}</small></td></tr>",
            ((r["key"], _shown(r["value"], masked=r.get("masked", False)), r["source"]) for r in rows)))

    @admin.display(description="flag states")
    def flag_states(self, obj: Release):
        return format_html_join("", "<div><strong>{}</strong>: {}</div>", (
            (name, "on" if state["enabled"] else "off") for name, state in sorted(obj.content["flags"].items())))

    # Immutable: created through release_create only, never changed, never deleted here.
    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ReleaseAddForm
            kwargs["fields"] = ["tenant", "environment", "name"]
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request, obj=None):
        return ["tenant", "environment", "name"] if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        release = release_create(tenant=form.cleaned_data["tenant"], environment=form.cleaned_data["environment"],
                                 name=form.cleaned_data["name"], actor=actor_of(request), user_id=request.user.pk)
        # The admin logs and redirects to the row the service wrote.
        obj.pk, obj.digest, obj.created_at = release.pk, release.digest, release.created_at
        obj._state.adding = False

    @admin.action(description="Make a new release of each selected release's environment, now")
    def snapshot_again(self, request, queryset):
        if not self.has_add_permission(request):
            raise PermissionDenied
        stamp = timezone.now().strftime("%Y-%m-%d %H:%M:%S")
        made = []
        for tenant, environment in {(r.tenant, r.environment) for r in queryset.select_related("tenant", "environment")}:
            try:
                made.append(release_create(tenant=tenant, environment=environment, name=f"{environment} {stamp}",
                                           actor=actor_of(request), user_id=request.user.pk))
            except DomainError as exc:
                self.message_user(request, f"{tenant}/{environment}: {exc.message}", messages.ERROR)
        if made:
            self.message_user(request, "Made " + ", ".join(f"'{r.name}' ({r.tenant})" for r in made) + ".",
                              messages.SUCCESS)

    @admin.action(description="Compare the two selected releases")
    def compare_selected(self, request, queryset):
        ids = list(queryset.order_by("created_at", "id").values_list("id", flat=True))
        if len(ids) != 2:
            self.message_user(request, "Select exactly two releases to compare.", messages.ERROR)
            return None
        return HttpResponseRedirect(f"{reverse('admin:releases_release_compare')}?a={ids[0]}&b={ids[1]}")

    @admin.action(description="Roll its environment back to the selected release (opens a change request)")
    def rollback_to_selected(self, request, queryset):
        if not request.user.has_perms(("tenants.add_configentry", "tenants.change_configentry")):
            raise PermissionDenied
        releases = list(queryset[:2])
        if len(releases) != 1:
            self.message_user(request, "Select exactly one release to roll back to.", messages.ERROR)
            return None
        release = releases[0]
        try:
            change_request = release_rollback(release=release, actor=actor_of(request), user_id=request.user.pk)
        except DomainError as exc:
            self.message_user(request, f"No change request opened: {exc.message}", messages.ERROR)
            return None
        self.message_user(request, f"Change request {getattr(change_request, 'pk', '')} opened to roll "
                                   f"{release.environment} back to '{release.name}'.", messages.SUCCESS)
        return None

    def get_urls(self):
        return [path("compare/", self.admin_site.admin_view(self.compare_view), name="releases_release_compare"),
                *super().get_urls()]

    def compare_view(self, request):
        """Any two releases of one tenant, for the tenant or one service; secrets masked
        unless the operator may reveal them."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = CompareForm(request.GET or None)
        context = {**self.admin_site.each_context(request), "title": "Compare releases", "form": form,
                   "opts": self.model._meta}
        if form.is_valid():
            a, b = form.cleaned_data["a"], form.cleaned_data["b"]
            reveal = request.user.has_perm(REVEAL)
            result = releases_compare(a=a, b=b, service=form.cleaned_data.get("service") or "", reveal=reveal)
            rows = [{"key": d["key"], "from": _side(d["from"]), "to": _side(d["to"])} for d in result["differences"]]
            flags = [{"name": f["name"], "from": _flag(f["from"]), "to": _flag(f["to"])} for f in result["flags"]]
            context.update(a=a, b=b, rows=rows, flags=flags)
        return render(request, "admin/releases/compare.html", context)


def _side(side: dict) -> dict:
    if side["source"] is None:
        return {"value": "—", "source": "(none)"}
    return {"value": _shown(side["value"], masked=side.get("masked", False)), "source": side["source"]}


def _flag(state: dict | None) -> str:
    if state is None:
        return "—"
    return json.dumps(state, ensure_ascii=False, sort_keys=True)


class CompareForm(forms.Form):
    a = forms.ModelChoiceField(queryset=Release.objects.select_related("tenant", "environment").defer("content", "secrets"),
                               label="from")
    b = forms.ModelChoiceField(queryset=Release.objects.select_related("tenant", "environment").defer("content", "secrets"),
                               label="to")
    service = forms.CharField(required=False, help_text="Resolve for this service (empty: the tenant).")

    def clean(self):
        cleaned = super().clean()
        a, b = cleaned.get("a"), cleaned.get("b")
        if a and b and a.tenant_id != b.tenant_id:
            raise forms.ValidationError("Pick two releases of the same tenant.")
        return cleaned


class PinAddForm(forms.ModelForm):
    class Meta:
        model = Pin
        fields = ["release", "service_name"]


@admin.register(Pin)
class PinAdmin(ServiceDeleteMixin, admin.ModelAdmin):
    list_display = ("service_name", "tenant", "environment", "release", "created_at")
    list_filter = ("environment", "tenant")
    search_fields = ("service_name",)
    form = PinAddForm

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_readonly_fields(self, request, obj=None):
        return ("tenant", "environment", "service_name", "release", "created_at") if obj else ()

    def get_fields(self, request, obj=None):
        return ["release", "service_name"] if obj is None else ["tenant", "environment", "service_name", "release",
                                                                "created_at"]

    def save_model(self, request, obj, form, change):
        pin = release_pin(release=form.cleaned_data["release"], service_name=form.cleaned_data["service_name"],
                          actor=actor_of(request), user_id=request.user.pk)
        obj.pk, obj.tenant_id, obj.environment_id = pin.pk, pin.tenant_id, pin.environment_id
        obj._state.adding = False

    def delete_model(self, request, obj):
        release_unpin(release=obj.release, service_name=obj.service_name, actor=actor_of(request),
                      user_id=request.user.pk)
