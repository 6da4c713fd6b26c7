"""Extra admin pages: compare and promote environments; import and export a tenant."""
from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from config_hub.transfer import dumps, loads, tenant_export, tenant_import
from core.admin import MASK
from core.audit import change_reason
from core.errors import DomainError
from registry.models import Service
from tenants.compare import environments_compare
from tenants.models import ConfigEntry, Environment, Tenant
from tenants.selectors import SOURCE_DEFAULT, config_resolve
from tenants.services.configs import config_set

# What each page needs beyond being staff (the model permissions of what it reads or writes).
CONFIG_READ = ("tenants.view_configentry", "tenants.change_configentry")  # either one
CONFIG_WRITE = ("tenants.add_configentry", "tenants.change_configentry")  # both
FLAG_WRITE = ("flags.add_flag", "flags.change_flag")  # both


def _require_all(user, perms: tuple[str, ...]) -> None:
    if not user.has_perms(perms):
        raise PermissionDenied(f"this needs the permissions {', '.join(perms)}")


def _require_any(user, perms: tuple[str, ...]) -> None:
    if not any(user.has_perm(p) for p in perms):
        raise PermissionDenied(f"this needs one of the permissions {', '.join(perms)}")


def _service_choices() -> list[tuple[str, str]]:
    names = set(ConfigEntry.objects.exclude(service_name="").values_list("service_name", flat=True).distinct())
    names |= set(Service.objects.values_list("name", flat=True).distinct())
    return [("", "(no service: the tenant's own values)")] + [(n, n) for n in sorted(names)]


class CompareForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.all())
    source = forms.ModelChoiceField(queryset=Environment.objects.all(), label="from")
    target = forms.ModelChoiceField(queryset=Environment.objects.all(), label="to")
    service = forms.ChoiceField(required=False, help_text="Resolve as this service does: its own entries included.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["service"].choices = _service_choices()

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("source") and cleaned.get("source") == cleaned.get("target"):
            raise forms.ValidationError("Pick two different environments.")
        return cleaned


def _shown(side: dict) -> str:
    if side["source"] is None:
        return "—"
    return MASK if side.get("masked") else json.dumps(side["value"], ensure_ascii=False)


def _rows(differences: list[dict]) -> list[dict]:
    """The page's rows of :func:`tenants.selectors.environments_compare`'s differences."""
    return [{"key": d["key"], "source": _shown(d["from"]), "target": _shown(d["to"]),
             "source_scope": d["from"]["source"] or "(not set)", "target_scope": d["to"]["source"] or "(not set)",
             "secret": d["from"]["is_secret"] or d["to"]["is_secret"],
             "promotable": d["from"]["source"] not in (None, SOURCE_DEFAULT)} for d in differences]


def _promote_scope(service_name: str, difference: dict) -> str:
    """The service name of the entry a promotion writes in the target environment:
    the service's own scope when the value comes from a service-scoped entry or the
    target's winner is one (a broader entry would not change what the service
    reads); else the tenant's environment-wide scope, as without a service."""
    if not service_name:
        return ""
    scoped = any("service" in (difference[side]["source"] or "").split("+") for side in ("from", "to"))
    return service_name if scoped else ""


@require_http_methods(["GET", "POST"])
def compare_environments(request):
    """Pick a tenant, two environments and optionally a service; see every key whose
    resolved value differs; copy chosen keys after a preview.

    Seeing the differences needs the view (or change) permission of config entries;
    any POST (preview or promote: it writes config entries) needs their add and
    change permissions, else 403 before anything is read or written.
    """

    _require_any(request.user, CONFIG_READ)
    if request.method == "POST":
        _require_all(request.user, CONFIG_WRITE)

    reveal = request.user.has_perm("tenants.reveal_secret")
    form = CompareForm(request.GET or None)
    context = {**admin.site.each_context(request), "title": "Compare and promote environments", "form": form}
    if form.is_valid():
        tenant, source, target = form.cleaned_data["tenant"], form.cleaned_data["source"], form.cleaned_data["target"]
        service_name = form.cleaned_data.get("service") or ""
        differences = environments_compare(tenant=tenant, source=source, target=target, service_name=service_name,
                                           reveal=reveal)
        rows = _rows(differences)
        context.update(rows=rows, tenant=tenant, source=source, target=target, service_name=service_name)
        if request.method == "POST":
            promotable = {r["key"] for r in rows if r["promotable"]}
            chosen = [k for k in request.POST.getlist("keys") if k in promotable]
            if not chosen:
                messages.error(request, "Choose at least one key to promote.")
            elif "confirm" in request.POST:
                by_key = {d["key"]: d for d in differences}
                try:
                    with transaction.atomic(), change_reason(request.POST.get("change_reason")):
                        for key in chosen:
                            res = config_resolve(tenant=tenant, key=key, environment=source.slug, service_name=service_name)
                            config_set(tenant=tenant, key=key, value=res.value, environment=target,
                                       service_name=_promote_scope(service_name, by_key[key]),
                                       is_secret=res.is_secret, actor=f"user:{request.user.get_username()}",
                                       user_id=request.user.pk, can_read_secrets=reveal)
                except DomainError as exc:
                    messages.error(request, f"Nothing was promoted: {exc.message}")
                else:
                    messages.success(request, f"Promoted {len(chosen)} key(s) from {source} to {target} for {tenant}"
                                              f"{f' ({service_name})' if service_name else ''}.")
                    return redirect(f"{request.path}?{request.GET.urlencode()}")
            else:
                context.update(preview=[r for r in rows if r["key"] in chosen], chosen=chosen)
    return render(request, "admin/compare.html", context)


class ImportForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.all())
    file = forms.FileField(help_text="A JSON or YAML export of config hub.")


class ExportForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.all())
    format = forms.ChoiceField(choices=[("yaml", "YAML"), ("json", "JSON")])
    secrets = forms.ChoiceField(choices=[("none", "leave secrets out"), ("encrypted", "encrypted (Fernet tokens)"),
                                         ("plain", "plain text (needs the reveal permission)")])


@require_http_methods(["GET", "POST"])
def transfer(request):
    """Export (needs the view permission of config entries; plain secrets also the
    reveal permission) and import (writes configs and flags: needs the add and change
    permissions of both, else 403 before the file is read)."""

    if request.method == "POST":
        _require_all(request.user, CONFIG_WRITE + FLAG_WRITE)
    else:
        _require_any(request.user, CONFIG_READ)

    export_form = ExportForm(request.GET if "export" in request.GET else None)
    import_form = ImportForm(request.POST or None, request.FILES or None)
    if "export" in request.GET and export_form.is_valid():
        secrets = export_form.cleaned_data["secrets"]
        if secrets == "plain" and not request.user.has_perm("tenants.reveal_secret"):
            messages.error(request, "Exporting secrets in plain text needs the permission to reveal them.")
        else:
            tenant, fmt = export_form.cleaned_data["tenant"], export_form.cleaned_data["format"]
            body = dumps(tenant_export(tenant=tenant, include_secrets=secrets), fmt)
            response = HttpResponse(body, content_type="application/x-yaml" if fmt == "yaml" else "application/json")
            response["Content-Disposition"] = f'attachment; filename="{tenant.slug}.{fmt}"'
            return response
    if request.method == "POST" and import_form.is_valid():
        try:
            text = import_form.cleaned_data["file"].read().decode("utf-8")
            summary = tenant_import(tenant=import_form.cleaned_data["tenant"], document=loads(text),
                                    actor=f"user:{request.user.get_username()}", user_id=request.user.pk,
                                    can_read_secrets=request.user.has_perm("tenants.reveal_secret"))
        except (DomainError, UnicodeDecodeError) as exc:
            problems = getattr(exc, "details", None)
            problems = problems.get("problems", []) if isinstance(problems, dict) else []
            import_form.add_error("file", getattr(exc, "message", str(exc)))
            for p in problems[:20]:
                import_form.add_error("file", p)
        else:
            messages.success(request, f"Imported {summary['configs']} config(s) and {summary['flags']} flag(s).")
            return redirect(request.path)
    return render(request, "admin/transfer.html", {**admin.site.each_context(request), "title": "Import and export",
                                                    "export_form": export_form or ExportForm(), "import_form": import_form})
