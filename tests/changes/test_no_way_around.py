"""No way around it: every write route (API, seed routes, imports, admin forms and
actions, promote, revert, bulk) against a protected production answers
``change_request_required`` (409 in the API; an error on the admin page) and
changes nothing."""
from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from core.api.principal import ALL_SCOPES
from flags.models import Flag, FlagEnvironment, Segment
from tenants.models import ConfigEntry, ConfigSchema
from tests import factories as make

pytestmark = pytest.mark.django_db


def _state() -> dict:
    return {
        "configs": list(ConfigEntry.objects.order_by("pk").values_list(
            "pk", "tenant_id", "environment_id", "service_name", "key", "value", "is_secret", "version", "description")),
        "secrets": [(e.pk, e.secret_value) for e in ConfigEntry.objects.filter(is_secret=True).order_by("pk")],
        "schemas": list(ConfigSchema.objects.order_by("pk").values_list("key", "schema", "default_value", "version")),
        "flags": list(Flag.objects.order_by("pk").values_list("pk", "name", "kind", "variants", "dependencies", "version")),
        "states": list(FlagEnvironment.objects.order_by("pk").values_list("pk", "flag_id", "environment_id", "enabled",
                                                                          "strategies", "version")),
        "segments": list(Segment.objects.order_by("pk").values_list("pk", "name", "constraints")),
    }


@pytest.fixture
def world(tenant, environments, protect):
    prod, staging = environments["production"], environments["staging"]
    timeout = make.config(tenant, "svc.timeout", 5, environment=prod)
    from tenants.services.configs import config_update

    config_update(entry=timeout, value=6, actor="test")  # a history to revert to
    make.config(tenant, "svc.mode", "a")  # tenant-wide: production resolves it
    make.config(tenant, "svc.theme", "light", environment=staging)  # to promote
    make.secret(tenant, "svc.password", "pw-1", environment=prod)
    make.schema("svc.limit", {"type": "integer"}, default_value=1)
    flag = make.flag(tenant, "checkout", environment=prod, is_enabled=False)
    make.segment(tenant, "eu", [{"contextName": "region", "operator": "IN", "values": ["eu"]}])
    protect(tenant)
    return {"timeout": timeout, "flag": flag, "prod": prod, "staging": staging,
            "history_id": timeout.history.order_by("history_id").first().history_id}


def test_api_write_routes__protected_production__409_change_request_required_nothing_changed(world, tenant, make_key, client_for):
    key = client_for(make_key(tenant=tenant, scopes=sorted(ALL_SCOPES), name="everything"))
    platform = client_for(make_key(tenant=None, scopes=sorted(ALL_SCOPES), name="platform"), HTTP_X_TENANT_ID="acme")
    entry, flag = world["timeout"], world["flag"]
    unleash = {"version": 1, "features": [{"name": "checkout", "enabled": True, "strategies": [
        {"name": "default", "parameters": {}, "constraints": []}], "variants": []}]}
    calls = [
        (key, "put", "/config/tenants/acme/configs/svc.mode", {"config_value": "b"}),  # seed 000, tenant-wide
        (key, "put", "/config/tenants/acme/configs/svc.timeout", {"config_value": 7, "environment": "production"}),
        (key, "post", "/api/v1/config/", {"key": "svc.new", "value": 1, "environment": "production"}),
        (key, "post", "/api/v1/config/", {"key": "svc.new", "value": 1}),  # tenant-wide, new: production would see it
        (key, "put", f"/api/v1/config/{entry.pk}", {"value": 7}),
        (key, "patch", f"/api/v1/config/{entry.pk}", {"value": 7}),
        (key, "delete", f"/api/v1/config/{entry.pk}", None),
        (key, "post", f"/api/v1/configs/{entry.pk}/revert", {"history_id": world["history_id"]}),
        (platform, "post", "/api/v1/config/", {"tenant": None, "key": "svc.global", "value": 1}),
        (platform, "post", "/api/v1/schemas/", {"key": "svc.other", "schema": {"type": "string"}, "default_value": "x"}),
        (platform, "put", "/api/v1/schemas/svc.limit", {"schema": {"type": "number"}, "default_value": 2}),
        (platform, "delete", "/api/v1/schemas/svc.limit", None),
        (key, "post", "/api/v1/feature-flags/", {"name": "new_flag", "environment": "production", "is_enabled": True}),
        (key, "put", f"/api/v1/feature-flags/{flag.pk}", {"rollout_percentage": 50.0}),  # seed 001: the flag's own environment
        (key, "patch", f"/api/v1/feature-flags/{flag.pk}", {"environment": "production", "is_enabled": True}),
        (key, "patch", f"/api/v1/feature-flags/{flag.pk}", {"variants": [make.variant("a", 1000, "string", "x")]}),
        (key, "delete", f"/api/v1/feature-flags/{flag.pk}", None),
        (key, "post", "/api/v1/feature-flags/import/unleash?environment=production", unleash),
    ]
    before = _state()
    failures = []
    for client, method, path, body in calls:
        response = getattr(client, method)(path, body, format="json") if body is not None else getattr(client, method)(path)
        code = response.json().get("error", {}).get("code") if response.content else None
        if (response.status_code, code) != (409, "change_request_required"):
            failures.append(f"{method.upper()} {path} -> {response.status_code} {code}")
        elif response.json()["error"]["details"]["route"] != "/api/v1/change-requests/":
            failures.append(f"{method.upper()} {path}: the refusal names no route")
    assert not failures, "\n".join(failures)
    assert _state() == before


def test_api_write__development_and_shadowed_tenant_wide__still_direct(world, tenant, environments, make_key, client_for):
    key = client_for(make_key(tenant=tenant, scopes=sorted(ALL_SCOPES), name="everything"))
    # Production holds its own svc.timeout: the tenant-wide entry of that key does not reach it.
    assert key.post("/api/v1/config/", {"key": "svc.timeout", "value": 1}, format="json").status_code == 201
    assert key.post("/api/v1/config/", {"key": "svc.dev", "value": 1, "environment": "development"}, format="json").status_code == 201
    assert key.patch(f"/api/v1/feature-flags/{world['flag'].pk}", {"description": "words only"}, format="json").status_code == 200
    platform = client_for(make_key(tenant=None, scopes=sorted(ALL_SCOPES), name="platform"))
    # A schema whose default value stays as it is changes no resolved value.
    assert platform.put("/api/v1/schemas/svc.limit", {"schema": {"type": "number"}, "default_value": 1},
                        format="json").status_code == 200
    assert platform.post("/api/v1/schemas/", {"key": "svc.rule", "schema": {"type": "string"}}, format="json").status_code == 201


def test_admin_write_paths__protected_production__refused_nothing_changed(world, tenant, environments, admin_user, client):
    client.force_login(admin_user)
    entry, flag, prod = world["timeout"], world["flag"], world["prod"]
    seg = Segment.objects.get(name="eu")
    before = _state()
    doc = {"format": "config-hub", "version": 1, "configs": [{"key": "svc.timeout", "value": 9, "environment": "production"}],
           "flags": []}
    query = f"?tenant={tenant.pk}&source={world['staging'].pk}&target={prod.pk}"

    pages = {
        "config change": client.post(f"/admin/tenants/configentry/{entry.pk}/change/", {
            "is_secret": "", "value": "7", "description": ""}),
        "config add": client.post("/admin/tenants/configentry/add/", {
            "tenant": tenant.pk, "environment": prod.pk, "service_name": "", "key": "svc.added", "value": "1", "description": ""}),
        "config delete": client.post(f"/admin/tenants/configentry/{entry.pk}/delete/", {"post": "yes"}, follow=True),
        "flag states": client.post(f"/admin/flags/flag/{flag.pk}/change/", {
            "description": "", "kind": "boolean", "default_environment": prod.pk, "variants": "[]", "dependencies": "[]",
            "states-TOTAL_FORMS": "1", "states-INITIAL_FORMS": "1", "states-MIN_NUM_FORMS": "0", "states-MAX_NUM_FORMS": "1000",
            "states-0-id": flag.states.get().pk, "states-0-flag": flag.pk, "states-0-environment": prod.pk,
            "states-0-enabled": "on", "states-0-strategies": "[]"}, follow=True),
        "bulk enable": client.post("/admin/flags/flag/", {"action": "bulk_enable", "_selected_action": [flag.pk],
                                                          "apply": "1", "environment": prod.pk}, follow=True),
        "segment": client.post(f"/admin/flags/segment/{seg.pk}/change/", {"description": "", "constraints": "[]"}, follow=True),
        "schema": client.post("/admin/tenants/configschema/add/", {
            "key": "svc.admin", "schema": '{"type": "string"}', "metadata": "{}", "default_value": '"x"'}, follow=True),
        "promote": client.post("/admin/compare/" + query, {"keys": ["svc.theme"], "confirm": "1"}, follow=True),
        "import": client.post("/admin/transfer/", {"tenant": tenant.pk, "file": SimpleUploadedFile(
            "acme.json", json.dumps(doc).encode(), content_type="application/json")}, follow=True),
    }

    failures = [f"{name} -> {r.status_code}" for name, r in pages.items()
                if r.status_code != 200 or "change request" not in r.content.decode()]
    assert not failures, "\n".join(failures)
    assert _state() == before
