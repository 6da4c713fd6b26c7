"""Config routes over HTTP: shapes, secrets, ETags, caching, auth, errors."""
from __future__ import annotations

import io
import logging

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests import factories as make

pytestmark = pytest.mark.django_db

SECRET = "sk_live_51Hx_do_not_print"


@pytest.fixture
def reader(tenant, make_key, client_for):
    return client_for(make_key(tenant=tenant, scopes=["configs:read"], name="reader"))


@pytest.fixture
def writer(tenant, make_key, client_for):
    return client_for(make_key(tenant=tenant, scopes=["configs:read", "configs:write"], name="writer"))


def test_seed001_read__resolved_value__has_every_field_the_seed_reads(tenant, environments, reader):
    make.config(tenant, "database.url", "postgresql://db/users", environment=environments["production"],
                service_name="user-service")

    r = reader.get("/api/v1/config/database.url?environment=production&service_name=user-service")

    assert r.status_code == 200
    body = r.json()
    assert {k: body[k] for k in ("key", "value", "environment", "service_name", "version", "source", "is_secret")} == {
        "key": "database.url", "value": "postgresql://db/users", "environment": "production",
        "service_name": "user-service", "version": 1, "source": "tenant+environment+service", "is_secret": False,
    }


def test_secret__reader_without_secrets_scope__masked(tenant, reader, make_key, client_for):
    make.config(tenant, "external.api_key", SECRET, is_secret=True)
    revealer = client_for(make_key(tenant=tenant, scopes=["configs:read", "secrets:read"], name="revealer"))

    masked = reader.get("/api/v1/config/external.api_key")
    shown = revealer.get("/api/v1/config/external.api_key")
    listed = reader.get("/api/v1/configs/")
    bundle = reader.get("/api/v1/config/service/anything")

    assert (masked.json()["value"], masked.json()["masked"]) == (None, True)
    assert shown.json()["value"] == SECRET and "masked" not in shown.json()
    for response in (masked, listed, bundle):
        assert SECRET not in response.content.decode()


def test_etag__same_representation__304_on_if_none_match(tenant, reader):
    make.config(tenant, "k", {"a": 1})
    first = reader.get("/api/v1/config/k")

    second = reader.get("/api/v1/config/k", HTTP_IF_NONE_MATCH=first["ETag"])

    assert second.status_code == 304
    assert second.content == b""
    for url in ("/api/v1/configs/", "/api/v1/config/service/svc", "/config/tenants/acme/configs/k"):
        r = reader.get(url)
        assert reader.get(url, HTTP_IF_NONE_MATCH=r["ETag"]).status_code == 304


def test_put__stale_if_match__412_and_value_kept(tenant, writer):
    entry = make.config(tenant, "k", 1)
    ok = writer.put(f"/api/v1/config/{entry.pk}", {"value": 2}, format="json", HTTP_IF_MATCH=f'"{entry.pk}-1"')

    stale = writer.put(f"/api/v1/config/{entry.pk}", {"value": 3}, format="json", HTTP_IF_MATCH=f'"{entry.pk}-1"')
    stale_body = writer.patch(f"/api/v1/config/{entry.pk}", {"value": 3, "version": 1}, format="json")

    assert ok.status_code == 200 and ok["ETag"] == f'"{entry.pk}-2"'
    assert stale.status_code == 412 and stale_body.status_code == 412
    assert stale.json()["error"] == {"code": "stale_version", "message": f"config entry {entry.pk} is at version 2, not 1",
                                     "details": {"current_version": 2}}
    assert writer.get("/api/v1/config/k").json()["value"] == 2


def test_cached_read__second_request__makes_no_database_query(tenant, reader):
    make.config(tenant, "k", 1)
    assert reader.get("/api/v1/config/k").status_code == 200

    with CaptureQueriesContext(connection) as ctx:
        r = reader.get("/api/v1/config/k")

    assert r.status_code == 200
    assert ctx.captured_queries == []


def test_uncached_read__small_constant_number_of_queries(tenant, reader, environments):
    for i in range(30):
        make.config(tenant, f"k{i}", i)
    reader.get("/api/v1/config/k0")
    from core.cache import clear_all

    cache.clear()
    clear_all()

    with CaptureQueriesContext(connection) as ctx:
        reader.get("/api/v1/config/k1?environment=production&service_name=s")

    # Cold cache: API key, its last use, tenant by id, tenant by slug, environment,
    # the services pinned to releases (one map for every tenant: releases/selectors.py),
    # the candidate entries of all eight scopes, the schema default. Not per entry.
    assert len(ctx.captured_queries) == 8


def test_write_paths__each_invalidates_the_cached_value(tenant, writer, django_capture_on_commit_callbacks):
    from tenants.models import ConfigEntry
    from tenants.services.configs import config_delete

    with django_capture_on_commit_callbacks(execute=True):
        entry = make.config(tenant, "k", 1)
    assert writer.get("/api/v1/config/k").json()["value"] == 1
    with django_capture_on_commit_callbacks(execute=True):
        writer.put(f"/api/v1/config/{entry.pk}", {"value": 2}, format="json")
    assert writer.get("/api/v1/config/k").json()["value"] == 2
    with django_capture_on_commit_callbacks(execute=True):
        writer.put("/config/tenants/acme/configs/k", {"config_value": 3}, format="json")
    assert writer.get("/config/tenants/acme/configs/k").json()["config_value"] == 3
    with django_capture_on_commit_callbacks(execute=True):
        config_delete(entry=ConfigEntry.objects.get(pk=entry.pk), actor="t")
        make.schema("k", {"type": "integer"}, default_value=9)
    assert (writer.get("/api/v1/config/k").json()["value"], writer.get("/api/v1/config/k").json()["source"]) == (9, "default")


def test_admin_edit__invalidates_cached_read(tenant, reader, admin_user, client, django_capture_on_commit_callbacks):
    entry = make.config(tenant, "ui.theme", "light")
    assert reader.get("/api/v1/config/ui.theme").json()["value"] == "light"
    client.force_login(admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(f"/admin/tenants/configentry/{entry.pk}/change/", {
            "tenant": tenant.pk, "environment": "", "service_name": "", "key": "ui.theme", "is_secret": "",
            "value": '"dark"', "description": "",
        })

    assert r.status_code == 302
    assert reader.get("/api/v1/config/ui.theme").json()["value"] == "dark"


def test_admin_edit__value_breaks_schema__error_on_the_field_with_path(tenant, admin_user, client):
    make.schema("limits", {"type": "object", "properties": {"max": {"type": "integer"}}})
    client.force_login(admin_user)

    r = client.post("/admin/tenants/configentry/add/", {
        "tenant": tenant.pk, "environment": "", "service_name": "", "key": "limits", "is_secret": "",
        "value": '{"max": "ten"}', "description": "",
    })

    assert r.status_code == 200
    assert r.context["adminform"].form.errors["value"] == ["$.max: 'ten' is not of type 'integer'"]


def test_bound_key__other_tenants_data__404_on_every_config_route(tenant, other_tenant, make_key, client_for):
    theirs = make.config(other_tenant, "k", "THEIRS")
    mine = client_for(make_key(tenant=tenant, scopes=["configs:read", "configs:write", "secrets:read"]))

    responses = [
        mine.get("/config/tenants/globex/configs/k"),
        mine.put("/config/tenants/globex/configs/k", {"config_value": 1}, format="json"),
        mine.get("/api/v1/config/k", HTTP_X_TENANT_ID="globex"),
        mine.get("/api/v1/config/service/x", HTTP_X_TENANT_ID="globex"),
        mine.put(f"/api/v1/config/{theirs.pk}", {"value": 1}, format="json"),
        mine.patch(f"/api/v1/config/{theirs.pk}", {"value": 1}, format="json"),
        mine.delete(f"/api/v1/config/{theirs.pk}"),
        mine.get(f"/api/v1/configs/{theirs.pk}"),
        mine.get("/api/v1/configs/?tenant=globex"),
        mine.post("/api/v1/config/", {"key": "k", "value": 1, "tenant": "globex"}, format="json"),
        mine.post(f"/api/v1/configs/{theirs.pk}/revert", {"history_id": 1}, format="json"),
    ]

    assert [r.status_code for r in responses] == [404] * len(responses)
    assert all("THEIRS" not in r.content.decode() for r in responses)
    assert mine.get("/api/v1/config/k").status_code == 404  # own tenant has no such key


def test_errors__bad_input__clear_json_never_500(tenant, writer):
    cases = [
        writer.post("/api/v1/config/", "[1, 2]", content_type="application/json"),
        writer.post("/api/v1/config/", "{not json", content_type="application/json"),
        writer.post("/api/v1/config/", {"key": "a b c", "value": 1}, format="json"),
        writer.post("/api/v1/config/", {"key": "x" * 300, "value": 1}, format="json"),
        writer.post("/api/v1/config/", {"key": "ok", "value": 1, "environment": "nowhere"}, format="json"),  # 400 naming it
        writer.put("/api/v1/config/abc", {"value": 1}, format="json"),
        writer.put("/config/tenants/acme/configs/k", {"wrong": 1}, format="json"),
    ]

    assert [r.status_code for r in cases] == [400, 400, 400, 400, 400, 404, 400]
    for r in cases:
        assert set(r.json()["error"]) == {"code", "message", "details"}


def test_create__same_scope_twice__409(tenant, writer):
    assert writer.post("/api/v1/config/", {"key": "k", "value": 1}, format="json").status_code == 201

    r = writer.post("/api/v1/config/", {"key": "k", "value": 2}, format="json")

    assert r.status_code == 409
    assert r.json()["error"]["code"] == "conflict"


def test_auth__no_credentials_401_missing_scope_403_bearer_key_accepted(tenant, reader, make_key, client_for):
    from rest_framework.test import APIClient

    make.config(tenant, "k", 1)
    anonymous = APIClient().get("/api/v1/config/k")
    bearer = client_for(make_key(tenant=tenant, scopes=["configs:read"]), scheme="Bearer").get("/config/tenants/acme/configs/k")
    forbidden = reader.post("/api/v1/config/", {"key": "x", "value": 1}, format="json")

    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"].startswith("ApiKey")
    assert bearer.status_code == 200 and bearer.json() == {"config_key": "k", "config_value": 1, "version": 1, "source": "tenant"}
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["message"] == "This credential lacks the 'configs:write' scope"


def test_api_key__revoked__refused_on_the_next_request(tenant, make_key, client_for):
    from tenants.models import ApiKey
    from tenants.services.api_keys import api_key_revoke

    raw = make_key(tenant=tenant, scopes=["configs:read"], name="to-revoke")
    client = client_for(raw)
    assert client.get("/api/v1/configs/").status_code == 200

    api_key_revoke(api_key=ApiKey.objects.get(name="to-revoke"), actor="t")

    assert client.get("/api/v1/configs/").status_code == 401
    assert ApiKey.objects.get(name="to-revoke").last_used_at is not None


def test_api_key__expired__refused(tenant, make_key, client_for):
    from datetime import timedelta

    from django.utils import timezone

    client = client_for(make_key(tenant=tenant, scopes=["configs:read"], expires_at=timezone.now() - timedelta(seconds=1)))

    assert client.get("/api/v1/configs/").status_code == 401


def test_jwt__operator_token__reads_and_refresh(tenant, admin_user, client_for):
    make.config(tenant, "k", 1)
    tokens = client_for().post("/api/v1/auth/token/", {"username": "root", "password": "pw-root-123"}, format="json").json()
    refreshed = client_for().post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json").json()
    operator = client_for(refreshed["access"], scheme="Bearer")

    assert operator.get("/config/tenants/acme/configs/k").json()["config_value"] == 1
    assert operator.get("/config/configs/k/all-tenants").json() == [{"tenant_id": "acme", "config_value": 1, "source": "tenant", "version": 1}]


def test_all_tenants__tenant_bound_admin_key__403(tenant, make_key, client_for):
    client = client_for(make_key(tenant=tenant, scopes=["admin"]))

    assert client.get("/config/configs/k/all-tenants").status_code == 403
    assert client.get("/api/v1/tenants/").status_code == 403


def test_logs__secret_written_read_and_refused__never_in_a_log_line(tenant, make_key, client_for, caplog, settings):
    settings.DEBUG = True  # Django logs every SQL statement with its parameters
    caplog.set_level(logging.DEBUG)
    logging.getLogger("django.db.backends").setLevel(logging.DEBUG)
    client = client_for(make_key(tenant=tenant, scopes=["configs:read", "configs:write", "secrets:read"]))
    make.schema("smtp.password", {"type": "string", "maxLength": 64})

    created = client.post("/api/v1/config/", {"key": "smtp.password", "value": SECRET, "is_secret": True}, format="json")
    client.get("/api/v1/config/smtp.password")
    client.put(f"/api/v1/config/{created.json()['id']}", {"value": SECRET * 5}, format="json")

    from core.logging import RedactSecretsFilter

    redacted = []
    for record in caplog.records:
        RedactSecretsFilter().filter(record)
        redacted.append(record.getMessage())
    assert SECRET not in "\n".join(redacted)
    assert created.status_code == 201
    assert len(redacted) > 5  # the DEBUG logs (SQL included) were really captured


# --- every route, masking, ETags -----------------------------------------------------


@pytest.fixture
def platform(make_key, client_for, default_tenant):
    return client_for(make_key(tenant=None, scopes=["admin"], name="platform"))


def test_secret__every_read_route__masked_without_scope_shown_with_it(tenant, reader, make_key, client_for, platform):
    entry = make.config(tenant, "db.password", SECRET, is_secret=True)
    revealer = client_for(make_key(tenant=tenant, scopes=["configs:read", "secrets:read"], name="revealer"))
    platform_reader = client_for(make_key(tenant=None, scopes=["configs:read"], name="platform-reader"))
    urls = [
        "/api/v1/config/db.password",
        "/api/v1/config/db.password?explain=true",
        f"/api/v1/configs/{entry.pk}",
        "/config/tenants/acme/configs/db.password",
    ]

    masked = [reader.get(url) for url in urls]
    shown = [revealer.get(url) for url in urls]
    everyone_masked = platform_reader.get("/config/configs/db.password/all-tenants")
    listed = platform_reader.get("/api/v1/configs/?tenant=acme")

    assert [r.status_code for r in masked + shown] == [200] * 8
    for r in masked:
        assert SECRET not in r.content.decode()
        assert r.json().get("value", r.json().get("config_value")) is None and r.json()["masked"] is True
    assert masked[1].json()["explain"] == [{"source": "tenant", "id": entry.pk, "version": 1, "environment": None,
                                            "service_name": None, "value": None, "masked": True}]
    assert [r.json().get("value", r.json().get("config_value")) for r in shown] == [SECRET] * 4
    assert all("masked" not in r.json() for r in shown)
    assert everyone_masked.status_code == 403  # all-tenants needs the admin scope
    assert SECRET not in listed.content.decode() and listed.json()["results"][0]["masked"] is True
    assert platform.get("/config/configs/db.password/all-tenants").json() == [
        {"tenant_id": "acme", "config_value": SECRET, "source": "tenant", "version": 1}
    ]


def test_secret__write_answers__never_echo_the_value_without_secrets_scope(tenant, writer):
    created = writer.post("/api/v1/config/", {"key": "smtp.password", "value": SECRET, "is_secret": True}, format="json")
    updated = writer.put(f"/api/v1/config/{created.json()['id']}", {"value": SECRET + "2"}, format="json")
    seed000 = writer.put("/config/tenants/acme/configs/smtp.password", {"config_value": SECRET + "3"}, format="json")

    assert [created.status_code, updated.status_code, seed000.status_code] == [201, 200, 200]
    for r in (created, updated, seed000):
        assert SECRET not in r.content.decode()
    assert (created.json()["value"], created.json()["masked"]) == (None, True)


def test_etag__every_get_route__304_on_if_none_match(tenant, platform, make_key, client_for):
    entry = make.config(tenant, "k", 1)
    make.schema("k", {"type": "integer"})
    urls = [
        "/api/v1/config/k", "/api/v1/config/k?explain=true", "/api/v1/config/service/svc", "/api/v1/configs/",
        f"/api/v1/configs/{entry.pk}", "/config/tenants/acme/configs/k", "/config/configs/k/all-tenants",
        "/api/v1/schemas/", "/api/v1/schemas/k", "/api/v1/tenants/", "/api/v1/tenants/acme", "/api/v1/environments/",
    ]

    for url in urls:
        first = platform.get(url, HTTP_X_TENANT_ID="acme") if "tenants/" not in url else platform.get(url)
        assert first.status_code == 200, url
        again = platform.get(url, HTTP_IF_NONE_MATCH=first["ETag"], **({} if "tenants/" in url else {"HTTP_X_TENANT_ID": "acme"}))
        assert (url, again.status_code, again.content) == (url, 304, b"")


def test_etag__value_changes__new_etag_and_200(tenant, writer, django_capture_on_commit_callbacks):
    entry = make.config(tenant, "k", 1)
    first = writer.get("/api/v1/config/k")
    with django_capture_on_commit_callbacks(execute=True):
        writer.put(f"/api/v1/config/{entry.pk}", {"value": 2}, format="json")

    again = writer.get("/api/v1/config/k", HTTP_IF_NONE_MATCH=first["ETag"])

    assert again.status_code == 200 and again.json()["value"] == 2
    assert again["ETag"] != first["ETag"]


# --- seed 001 write routes --------------------------------------------------------


def test_seed001_create__every_field__201_with_id_then_readable(tenant, environments, writer):
    r = writer.post("/api/v1/config/", {
        "key": "user-service.email_settings", "value": {"smtp": "mail"}, "environment": "production",
        "service_name": "user-service", "description": "mail relay", "is_secret": False,
    }, format="json")

    assert r.status_code == 201
    body = r.json()
    assert {k: body[k] for k in ("key", "value", "tenant", "environment", "service_name", "description", "version", "source")} == {
        "key": "user-service.email_settings", "value": {"smtp": "mail"}, "tenant": "acme", "environment": "production",
        "service_name": "user-service", "description": "mail relay", "version": 1, "source": "tenant+environment+service",
    }
    assert isinstance(body["id"], int) and r["ETag"] == f'"{body["id"]}-1"'
    read = writer.get("/api/v1/config/user-service.email_settings?environment=production&service_name=user-service")
    assert (read.json()["value"], read.json()["id"]) == ({"smtp": "mail"}, body["id"])


def test_seed001_create__is_encrypted__stored_as_secret(tenant, writer):
    r = writer.post("/api/v1/config/", {"key": "api.token", "value": SECRET, "is_encrypted": True}, format="json")

    assert r.status_code == 201
    assert (r.json()["is_secret"], r.json()["is_encrypted"], r.json()["value"]) == (True, True, None)


def test_seed001_patch_and_delete__versions_and_if_match(tenant, writer):
    from tenants.models import ConfigEntry

    entry = make.config(tenant, "k", {"a": 1}, description="d")

    patched = writer.patch(f"/api/v1/config/{entry.pk}", {"description": "new"}, format="json")
    stale_delete = writer.delete(f"/api/v1/config/{entry.pk}", HTTP_IF_MATCH=f'"{entry.pk}-1"')
    deleted = writer.delete(f"/api/v1/config/{entry.pk}", HTTP_IF_MATCH=f'"{entry.pk}-2"')
    gone = writer.delete(f"/api/v1/config/{entry.pk}")

    assert (patched.status_code, patched.json()["value"], patched.json()["description"], patched.json()["version"]) == (200, {"a": 1}, "new", 2)
    assert stale_delete.status_code == 412
    assert deleted.status_code == 204 and deleted.content == b""
    assert gone.status_code == 404
    assert not ConfigEntry.objects.filter(pk=entry.pk).exists()


def test_seed001_put__value_breaks_schema__400_with_every_path(tenant, writer):
    entry = make.config(tenant, "pool", {"size": 5})
    make.schema("pool", {"type": "object", "properties": {"size": {"type": "integer"}, "hosts": {"type": "array", "items": {"type": "string"}}}})

    r = writer.put(f"/api/v1/config/{entry.pk}", {"value": {"size": "big", "hosts": ["a", 2]}}, format="json")

    assert r.status_code == 400
    assert r.json()["error"]["code"] == "schema_violation"
    assert r.json()["error"]["details"] == [
        {"path": "$.hosts[1]", "message": "2 is not of type 'string'"},
        {"path": "$.size", "message": "'big' is not of type 'integer'"},
    ]


def test_seed000_put__creates_then_updates__201_then_200(tenant, writer):
    created = writer.put("/config/tenants/acme/configs/email_notifications", {"config_value": {"enabled": True}}, format="json")
    updated = writer.put("/config/tenants/acme/configs/email_notifications", {"config_value": {"enabled": False}}, format="json")
    stale = writer.put("/config/tenants/acme/configs/email_notifications", {"config_value": {}, "version": 1}, format="json")

    assert (created.status_code, created.json()["version"], created.json()["source"]) == (201, 1, "tenant")
    assert (updated.status_code, updated.json()["config_value"], updated.json()["version"]) == (200, {"enabled": False}, 2)
    assert stale.status_code == 412
    assert writer.get("/config/tenants/acme/configs/email_notifications").json() == {
        "config_key": "email_notifications", "config_value": {"enabled": False}, "version": 2, "source": "tenant"}


def test_seed000_get__no_scope_and_no_default__404_json(tenant, reader):
    r = reader.get("/config/tenants/acme/configs/nothing.here")

    assert r.status_code == 404
    assert r.json() == {"error": {"code": "not_found", "message": "config 'nothing.here' not found for tenant 'acme'", "details": None}}


def test_explain__over_http__every_scope_in_order(tenant, environments, reader):
    make.config(None, "k", "global")
    make.config(tenant, "k", "tenant+env", environment=environments["staging"])
    make.schema("k", {"type": "string"}, default_value="fallback")

    r = reader.get("/api/v1/config/k?environment=staging&explain=true")

    assert (r.json()["value"], r.json()["source"]) == ("tenant+env", "tenant+environment")
    assert [(c["source"], c["value"]) for c in r.json()["explain"]] == [
        ("tenant+environment", "tenant+env"), ("global", "global"), ("default", "fallback")]


def test_list__filters_and_pagination(tenant, other_tenant, environments, reader):
    make.config(tenant, "billing.a", 1, environment=environments["production"])
    make.config(tenant, "billing.b", 2, service_name="billing")
    make.config(None, "billing.c", 3)
    make.config(tenant, "other", 4)
    make.config(other_tenant, "billing.z", 5)

    prefix = reader.get("/api/v1/configs/?key_prefix=billing.")
    env = reader.get("/api/v1/configs/?environment=production")
    svc = reader.get("/api/v1/configs/?service_name=billing")
    page = reader.get("/api/v1/configs/?limit=2&offset=0")

    assert [e["key"] for e in prefix.json()["results"]] == ["billing.a", "billing.b", "billing.c"]
    assert [e["key"] for e in env.json()["results"]] == ["billing.a"]
    assert [e["key"] for e in svc.json()["results"]] == ["billing.b"]
    assert (page.json()["count"], len(page.json()["results"]), page.json()["next"] is not None) == (4, 2, True)


# --- schemas, tenants, environments ----------------------------------------------------


def test_schemas__register_read_replace_delete(tenant, platform, reader, django_capture_on_commit_callbacks):
    body = {"key": "limits", "schema": {"type": "object", "properties": {"max": {"type": "integer"}}},
            "metadata": {"owner": "billing"}, "required": True, "default_value": {"max": 10}}

    created = platform.post("/api/v1/schemas/", body, format="json")
    read = reader.get("/api/v1/schemas/limits")
    first = reader.get("/api/v1/config/limits")
    with django_capture_on_commit_callbacks(execute=True):
        replaced = platform.put("/api/v1/schemas/limits", {**body, "default_value": {"max": 20}}, format="json")
    resolved = reader.get("/api/v1/config/limits")
    listed = reader.get("/api/v1/schemas/")
    refused = reader.post("/api/v1/schemas/", body, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        deleted = platform.delete("/api/v1/schemas/limits")

    assert created.status_code == 201
    assert {k: read.json()[k] for k in ("key", "schema", "metadata", "required", "default_value", "version")} == {
        "key": "limits", "schema": body["schema"], "metadata": {"owner": "billing"}, "required": True,
        "default_value": {"max": 10}, "version": 1}
    assert (replaced.status_code, replaced.json()["version"]) == (200, 2)
    assert first.json()["value"] == {"max": 10}
    assert (resolved.json()["value"], resolved.json()["source"]) == ({"max": 20}, "default")
    assert [s["key"] for s in listed.json()] == ["limits"]
    assert refused.status_code == 403
    assert deleted.status_code == 204 and reader.get("/api/v1/schemas/limits").status_code == 404
    assert reader.get("/api/v1/config/limits").status_code == 404


def test_schemas__invalid_schema__400_with_path(platform):
    r = platform.post("/api/v1/schemas/", {"key": "x", "schema": {"type": "object", "properties": {"n": {"minimum": "one"}}}}, format="json")

    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_schema"
    assert r.json()["error"]["details"] == [{"path": "$.properties.n.minimum", "message": "'one' is not of type 'number'"}]


def test_schemas__existing_secret_breaks_it__400_listing_it_without_the_value(tenant, platform):
    entry = make.config(tenant, "db.password", SECRET, is_secret=True)

    r = platform.put("/api/v1/schemas/db.password", {"schema": {"type": "string", "maxLength": 8}}, format="json")

    assert r.status_code == 400
    assert r.json()["error"]["code"] == "schema_breaks_existing_values"
    assert r.json()["error"]["details"] == {"breaking_values": [{
        "id": entry.pk, "tenant": "acme", "environment": None, "service_name": None,
        "errors": [{"path": "$", "message": "does not satisfy 'maxLength': 8"}]}]}
    assert SECRET not in r.content.decode()


def test_tenants__platform_admin_provisions__bound_or_scopeless_refused(platform, tenant, make_key, client_for):
    created = platform.post("/api/v1/tenants/", {"slug": "initech", "name": "Initech"}, format="json")
    duplicate = platform.post("/api/v1/tenants/", {"slug": "initech"}, format="json")
    patched = platform.patch("/api/v1/tenants/initech", {"is_active": False}, format="json")
    listed = platform.get("/api/v1/tenants/")
    read = platform.get("/api/v1/tenants/initech")
    deleted = platform.delete("/api/v1/tenants/initech")
    reader_of_all = client_for(make_key(tenant=None, scopes=["configs:read"])).get("/api/v1/tenants/")

    assert (created.status_code, created.json()) == (201, {"slug": "initech", "name": "Initech", "is_active": True})
    assert duplicate.status_code == 409
    assert patched.json() == {"slug": "initech", "name": "Initech", "is_active": False}
    assert [t["slug"] for t in listed.json()] == ["acme", "default", "initech"]
    assert read.json()["is_active"] is False
    assert deleted.status_code == 204 and platform.get("/api/v1/tenants/initech").status_code == 404
    assert reader_of_all.status_code == 403


def test_tenants__deactivated__its_keys_get_404_at_once(tenant, platform, reader):
    make.config(tenant, "k", 1)
    assert reader.get("/api/v1/config/k").status_code == 200

    platform.patch("/api/v1/tenants/acme", {"is_active": False}, format="json")

    assert reader.get("/api/v1/config/k").status_code == 404


def test_environments__list_and_add(platform, reader, environments):
    added = platform.post("/api/v1/environments/", {"slug": "qa", "name": "QA"}, format="json")
    refused = reader.post("/api/v1/environments/", {"slug": "qa2"}, format="json")

    assert added.status_code == 201 and added.json() == {"slug": "qa", "name": "QA"}
    assert refused.status_code == 403
    assert reader.get("/api/v1/environments/").json() == [
        {"slug": "development", "name": "Development"}, {"slug": "staging", "name": "Staging"},
        {"slug": "production", "name": "Production"}, {"slug": "qa", "name": "QA"}]


# --- cache: zero queries on every cached read, invalidation by rotation ---------------


@pytest.mark.parametrize("scheme", ["ApiKey", "Bearer"])
@pytest.mark.parametrize("url", [
    "/api/v1/config/k?environment=production&service_name=billing",
    "/api/v1/config/service/billing?environment=production",
    "/config/tenants/acme/configs/k",
])
def test_cached_read__every_cached_route__second_request_makes_no_query(
    tenant, environments, make_key, client_for, django_assert_num_queries, url, scheme
):
    make.config(tenant, "k", 1)
    make.config(tenant, "s", SECRET, is_secret=True)
    client = client_for(make_key(tenant=tenant, scopes=["configs:read", "secrets:read"]), scheme=scheme)
    assert client.get(url).status_code == 200

    with django_assert_num_queries(0):
        r = client.get(url)

    assert r.status_code == 200


def test_cached_read__platform_key_with_x_tenant_id__no_query(tenant, make_key, client_for, django_assert_num_queries):
    make.config(tenant, "k", 1)
    client = client_for(make_key(tenant=None, scopes=["configs:read"]), HTTP_X_TENANT_ID="acme")
    assert client.get("/api/v1/config/k").json()["value"] == 1

    with django_assert_num_queries(0):
        assert client.get("/api/v1/config/k").json()["value"] == 1


def test_rotation__cached_secret_read__still_answers_with_only_the_new_key(
    tenant, make_key, client_for, settings, django_capture_on_commit_callbacks
):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    revealer = client_for(make_key(tenant=tenant, scopes=["configs:read", "secrets:read"], name="revealer"))
    make.config(tenant, "db.password", SECRET, is_secret=True, service_name="billing")
    old = settings.FERNET_KEYS[0]
    assert revealer.get("/api/v1/config/db.password?service_name=billing").json()["value"] == SECRET
    assert revealer.get("/api/v1/config/service/billing").json()[0]["value"] == SECRET
    new = Fernet.generate_key().decode()
    settings.FERNET_KEYS = [new, old]

    with django_capture_on_commit_callbacks(execute=True):
        call_command("rotate_fernet_keys", stdout=io.StringIO())
    settings.FERNET_KEYS = [new]  # the old key is gone: anything it encrypted is unreadable

    single = revealer.get("/api/v1/config/db.password?service_name=billing")
    bundle = revealer.get("/api/v1/config/service/billing")
    assert (single.status_code, single.json()["value"]) == (200, SECRET)
    assert (bundle.status_code, bundle.json()[0]["value"]) == (200, SECRET)


def test_secret__wrong_fernet_key__json_error_never_ciphertext(tenant, make_key, client_for, settings):
    from cryptography.fernet import Fernet

    make.config(tenant, "db.password", SECRET, is_secret=True)
    revealer = client_for(make_key(tenant=tenant, scopes=["configs:read", "secrets:read"], name="revealer"))
    settings.FERNET_KEYS = [Fernet.generate_key().decode()]

    r = revealer.get("/api/v1/config/db.password")

    assert r.status_code == 500
    assert r.json()["error"]["code"] == "secret_undecryptable"
    assert "gAAAA" not in r.content.decode() and SECRET not in r.content.decode()


# --- auth and errors ---------------------------------------------------------------------


@pytest.mark.parametrize("header", [
    "ApiKey", "ApiKey ", "ApiKey chk_deadbeef_unknown", "ApiKey not-a-key", "Bearer not.a.jwt",
    "Bearer chk_deadbeef_unknown", "Basic cm9vdDpwdw==", "ApiKey " + "chk_" + "x" * 5000, "Token abc",
])
def test_auth__malformed_or_unknown_credentials__401_json(tenant, header):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    r = client.get("/api/v1/config/k")

    assert r.status_code == 401
    assert r.json()["error"]["code"] in ("not_authenticated", "authentication_failed")
    assert set(r.json()["error"]) == {"code", "message", "details"}


def test_auth__expired_jwt__401(tenant, admin_user, client_for):
    from datetime import timedelta

    from rest_framework_simplejwt.tokens import AccessToken

    token = AccessToken.for_user(admin_user)
    token.set_exp(lifetime=-timedelta(seconds=1))

    r = client_for(str(token), scheme="Bearer").get("/config/tenants/acme/configs/k")

    assert r.status_code == 401
    assert r.json()["error"]["message"] == "Invalid or expired token"


def test_auth__wrong_password_for_jwt__401_json(admin_user, client_for):
    r = client_for().post("/api/v1/auth/token/", {"username": "root", "password": "nope"}, format="json")

    assert r.status_code == 401
    assert set(r.json()["error"]) == {"code", "message", "details"}


def test_api_key__scopes_changed__effective_on_the_next_request(tenant, make_key, client_for, django_capture_on_commit_callbacks):
    from tenants.models import ApiKey
    from tenants.services.api_keys import api_key_update

    client = client_for(make_key(tenant=tenant, scopes=["configs:read"], name="k1"))
    assert client.get("/api/v1/configs/").status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        api_key_update(api_key=ApiKey.objects.get(name="k1"), scopes=["flags:read"], actor="t")

    assert client.get("/api/v1/configs/").status_code == 403


@pytest.mark.parametrize("method,url,body,status", [
    ("post", "/api/v1/config/", "null", 400),
    ("post", "/api/v1/config/", '"a string"', 400),
    ("post", "/api/v1/config/", "42", 400),
    ("post", "/api/v1/config/", "", 400),
    ("post", "/api/v1/config/", '{"key": ["k"], "value": 1}', 400),
    ("post", "/api/v1/config/", '{"key": "k", "value": 1, "is_secret": "maybe"}', 400),
    ("post", "/api/v1/config/", '{"key": "k", "value": 1, "environment": ["production"]}', 400),
    ("post", "/api/v1/config/", '{"key": "k", "value": 1, "service_name": {"a": 1}}', 400),
    ("post", "/api/v1/config/", '{"key": "k", "value": 1, "tenant": 7}', 404),
    ("post", "/api/v1/config/", '{"key": "k\\u0000", "value": 1}', 400),
    ("post", "/api/v1/config/", '{"key": "k", "value": "nul\\u0000"}', 400),
    ("post", "/api/v1/config/", '{"value": 1}', 400),
    ("put", "/api/v1/config/{id}", '{"value": 1, "version": "two"}', 400),
    ("put", "/api/v1/config/{id}", '{"value": 1, "version": -1}', 400),
    ("put", "/api/v1/config/{id}", "[]", 400),
    ("put", "/api/v1/config/{id}", "{}", 400),
    ("patch", "/api/v1/config/{id}", '{"is_secret": "yes please"}', 400),
    ("put", "/config/tenants/acme/configs/k", '{"config_value": 1, "version": true}', 400),
    ("put", "/config/tenants/acme/configs/k", '"x"', 400),
    ("put", "/config/tenants/acme/configs/k", '{"config_value": 1, "environment": "no such env"}', 400),
    ("put", "/config/tenants/acme/configs/" + "k" * 300, '{"config_value": 1}', 400),
    ("put", "/config/tenants/acme/configs/bad%20key", '{"config_value": 1}', 400),
    ("post", "/api/v1/schemas/", '{"key": "s", "schema": "not a schema"}', 400),
    ("post", "/api/v1/schemas/", '{"key": "s", "schema": {"type": "string"}, "metadata": [1]}', 400),
    ("post", "/api/v1/schemas/", '{"key": "s", "schema": {"type": "string"}, "default_value": 5}', 400),
    ("post", "/api/v1/tenants/", '{"slug": "Not A Slug"}', 400),
    ("patch", "/api/v1/tenants/acme", '{"is_active": "sometimes"}', 400),
    ("post", "/api/v1/environments/", '{"slug": ""}', 400),
])
def test_errors__wrong_types_and_shapes__400_json_never_500(tenant, environments, make_key, client_for, method, url, body,
                                                             status):
    entry = make.config(tenant, "k", 0)
    client = client_for(make_key(tenant=None, scopes=["admin"], name="platform"), HTTP_X_TENANT_ID="acme")

    r = getattr(client, method)(url.replace("{id}", str(entry.pk)), body, content_type="application/json")

    assert r.status_code == status, r.content[:300]  # 404: there is no tenant 7
    assert set(r.json()["error"]) == {"code", "message", "details"}


@pytest.mark.parametrize("url,status", [
    ("/api/v1/config/" + "k" * 5000, 404),
    ("/api/v1/config/%00", 400),
    ("/api/v1/config/k?environment=" + "e" * 3000, 404),
    ("/api/v1/config/k?service_name=%00", 400),
    ("/api/v1/config/k?environment=nowhere", 404),
    ("/api/v1/config/service/" + "s" * 3000, 200),
    ("/config/tenants/" + "t" * 3000 + "/configs/k", 404),
    ("/config/tenants/acme/configs/" + "k" * 5000, 404),
    ("/api/v1/configs/?limit=abc&offset=-5", 200),
    ("/api/v1/configs/99999999999999999999999", 404),
    ("/api/v1/configs/?tenant=%00", 400),
    ("/api/v1/schemas/" + "s" * 5000, 404),
])
def test_errors__huge_or_odd_reads__json_4xx_never_500(tenant, environments, reader, url, status):
    r = reader.get(url)

    assert r.status_code == status, (url[:80], r.status_code, r.content[:300])
    if r.status_code != 200:
        assert set(r.json()["error"]) == {"code", "message", "details"}


def test_errors__if_match_garbage__400(tenant, writer):
    entry = make.config(tenant, "k", 0)

    r = writer.put(f"/api/v1/config/{entry.pk}", {"value": 1}, format="json", HTTP_IF_MATCH='"banana"')

    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_precondition"


# --- tenant isolation: more ways to name another tenant ---------------------------------


def test_bound_key__other_tenant_named_any_way__404_and_never_their_value(tenant, other_tenant, make_key, client_for):
    theirs = make.config(other_tenant, "k", "THEIRS")
    secret = make.config(other_tenant, "s", "THEIR-SECRET", is_secret=True)
    mine = client_for(make_key(tenant=tenant, scopes=["configs:read", "configs:write", "secrets:read", "admin"]))
    header = {"HTTP_X_TENANT_ID": "globex"}

    responses = [
        mine.get("/api/v1/config/k?explain=true", **header),
        mine.get("/api/v1/config/s", **header),
        mine.get("/config/tenants/globex/configs/s"),
        mine.get("/config/tenants/globex/configs/k", **header),
        mine.get(f"/api/v1/configs/{secret.pk}"),
        mine.get(f"/api/v1/configs/{theirs.pk}", **header),
        mine.get("/api/v1/configs/", **header),
        mine.post("/api/v1/config/", {"key": "new", "value": 1}, format="json", **header),
        mine.put(f"/api/v1/config/{theirs.pk}", {"value": 1}, format="json", **header),
        mine.delete(f"/api/v1/config/{secret.pk}"),
        mine.put("/config/tenants/globex/configs/new", {"config_value": 1}, format="json", **header),
        mine.get("/api/v1/schemas/", **header),
        mine.get("/api/v1/environments/", **header),
        mine.get("/config/tenants/no-such-tenant/configs/k"),
    ]

    assert [r.status_code for r in responses] == [404] * len(responses)
    for r in responses:
        assert "THEIR" not in r.content.decode()
    assert theirs.__class__.objects.get(pk=theirs.pk).value == "THEIRS"


def test_bound_key__global_entry__readable_but_not_writable(tenant, make_key, client_for):
    shared = make.config(None, "shared", "G")
    mine = client_for(make_key(tenant=tenant, scopes=["configs:read", "configs:write"]))

    assert mine.get(f"/api/v1/configs/{shared.pk}").json()["value"] == "G"
    assert mine.put(f"/api/v1/config/{shared.pk}", {"value": "X"}, format="json").status_code == 404
    assert mine.delete(f"/api/v1/config/{shared.pk}").status_code == 404
    assert mine.post("/api/v1/config/", {"key": "g2", "value": 1, "tenant": None}, format="json").status_code == 404


def test_logs__secret_cycle_at_debug__no_raw_record_carries_it_even_unfiltered(tenant, make_key, client_for, caplog, settings):
    """Nothing logs a secret in the first place: the redaction filter is only a second line."""
    from core import logging as hub_logging

    settings.DEBUG = True  # every SQL statement is logged with its parameters
    caplog.set_level(logging.DEBUG)
    logging.getLogger("django.db.backends").setLevel(logging.DEBUG)
    hub_logging._secrets.clear()  # as in a process that never wrote the secret itself
    client = client_for(make_key(tenant=tenant, scopes=["configs:read", "configs:write", "secrets:read"]))
    make.schema("smtp.password", {"type": "string", "maxLength": 64})

    created = client.post("/api/v1/config/", {"key": "smtp.password", "value": SECRET, "is_secret": True}, format="json")
    hub_logging._secrets.clear()
    entry_id = created.json()["id"]
    reads = [client.get("/api/v1/config/smtp.password"), client.get("/config/tenants/acme/configs/smtp.password"),
             client.get(f"/api/v1/configs/{entry_id}"), client.get("/api/v1/config/service/x")]
    refused = client.put(f"/api/v1/config/{entry_id}", {"value": SECRET * 5}, format="json")
    seed000 = client.put("/config/tenants/acme/configs/smtp.password", {"config_value": SECRET[::-1]}, format="json")
    hub_logging._secrets.clear()

    raw = "\n".join(record.getMessage() for record in caplog.records)
    assert created.status_code == 201 and refused.status_code == 400 and seed000.status_code == 200
    assert [r.status_code for r in reads] == [200] * 4
    assert "tenants_configentry" in raw  # SQL was captured at DEBUG
    assert SECRET not in raw and SECRET[::-1] not in raw


def test_logs__configured_handlers__all_carry_the_redaction_filter(settings):
    handlers = settings.LOGGING["handlers"]

    assert handlers and all("redact" in h.get("filters", []) for h in handlers.values())


def test_bound_key__its_tenant_deleted_and_slug_reused__never_reaches_the_new_tenant(tenant, platform, make_key, client_for):
    old_key = client_for(make_key(tenant=tenant, scopes=["configs:read"], name="old"))
    make.config(tenant, "k", "old")
    assert old_key.get("/api/v1/config/k").json()["value"] == "old"

    assert platform.delete("/api/v1/tenants/acme").status_code == 204
    make.config(make.tenant("acme", name="New Acme"), "k", "NEW-TENANT")

    r = old_key.get("/api/v1/config/k")
    assert r.status_code == 401  # the key went with its tenant
    assert "NEW-TENANT" not in r.content.decode()


def test_put__if_match_from_a_masked_read__accepted(tenant, make_key, client_for):
    entry = make.config(tenant, "db.password", SECRET, is_secret=True)
    rotator = client_for(make_key(tenant=tenant, scopes=["configs:read", "configs:write"], name="rotator"))
    etag = rotator.get("/api/v1/config/db.password")["ETag"]

    ok = rotator.put(f"/api/v1/config/{entry.pk}", {"value": SECRET + "-next"}, format="json", HTTP_IF_MATCH=etag)
    stale = rotator.put(f"/api/v1/config/{entry.pk}", {"value": SECRET}, format="json", HTTP_IF_MATCH=etag)

    assert etag == f'"{entry.pk}-1-m"'
    assert (ok.status_code, ok.json()["version"], ok.json()["value"]) == (200, 2, None)
    assert stale.status_code == 412


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_errors__deeply_nested_json__400_never_500(tenant, writer, depth):
    body = '{"key": "k", "value": ' + "[" * depth + "]" * depth + "}"

    r = writer.post("/api/v1/config/", body, content_type="application/json")

    assert r.status_code == 400
    assert set(r.json()["error"]) == {"code", "message", "details"}


def test_admin_edit__deeply_nested_value__form_error_nothing_written(tenant, admin_user, client):
    from tenants.models import ConfigEntry

    client.force_login(admin_user)

    r = client.post("/admin/tenants/configentry/add/", {
        "tenant": tenant.pk, "environment": "", "service_name": "", "key": "deep", "is_secret": "",
        "value": "[" * 100_000 + "]" * 100_000, "description": "",
    })

    assert r.status_code == 200
    assert r.context["adminform"].form.errors["value"] == ["Enter valid JSON: it is nested too deeply."]
    assert not ConfigEntry.objects.filter(key="deep").exists()


def test_bundle__secret_changes__revealing_callers_etag_moves_masked_callers_answer_is_masked(
    tenant, make_key, client_for, django_capture_on_commit_callbacks
):
    from tenants.services.configs import config_update

    revealer = client_for(make_key(tenant=tenant, scopes=["configs:read", "secrets:read"], name="revealer"))
    reader = client_for(make_key(tenant=tenant, scopes=["configs:read"], name="reader"))
    with django_capture_on_commit_callbacks(execute=True):
        entry = make.config(tenant, "db.password", SECRET, is_secret=True, service_name="billing")
        make.config(tenant, "db.host", "db1", service_name="billing")
    first = revealer.get("/api/v1/config/service/billing")
    masked = reader.get("/api/v1/config/service/billing")
    assert revealer.get("/api/v1/config/service/billing", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304

    with django_capture_on_commit_callbacks(execute=True):
        config_update(entry=entry, value=SECRET + "-rotated", actor="t")
    second = revealer.get("/api/v1/config/service/billing", HTTP_IF_NONE_MATCH=first["ETag"])

    assert first["ETag"] != masked["ETag"]
    assert [r["value"] for r in masked.json()] == ["db1", None] and masked.json()[1]["masked"] is True
    assert SECRET not in masked.content.decode()
    assert second.status_code == 200
    assert second.json()[1]["value"] == SECRET + "-rotated" and "masked" not in second.json()[1]


def test_values_beyond_64_bit_integers__read_bundle_schema_and_304__never_500(tenant, make_key, client_for,
                                                                              django_capture_on_commit_callbacks):
    huge = 2 ** 70
    client = client_for(make_key(tenant=tenant, scopes=["configs:read", "configs:write"], name="bigint"))
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post("/api/v1/config/", {"key": "svc.limit", "value": {"max": huge}, "service_name": "svc"},
                              format="json")
    platform = client_for(make_key(tenant=None, scopes=["admin"], name="bigint-platform"))
    schema = platform.post("/api/v1/schemas/", {"key": "svc.other", "schema": {"type": "integer", "maximum": huge}}, format="json")
    broken = client.post("/api/v1/config/", {"key": "svc.other", "value": huge * 4, "service_name": "svc"}, format="json")

    read = client.get("/api/v1/config/svc.limit?service_name=svc")
    again = client.get("/api/v1/config/svc.limit?service_name=svc", HTTP_IF_NONE_MATCH=read["ETag"])
    bundle = client.get("/api/v1/config/service/svc")

    assert created.status_code == 201
    assert schema.status_code == 201
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "schema_violation"
    assert (read.status_code, read.json()["value"]) == (200, {"max": huge})
    assert again.status_code == 304
    assert bundle.status_code == 200 and bundle.json()[0]["value"] == {"max": huge}
