"""Config routes over HTTP: shapes, secrets, ETags, caching, auth, errors."""
from __future__ import annotations

import logging

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

pytestmark = pytest.mark.django_db

SECRET = "sk_live_51Hx_do_not_print"


@pytest.fixture
def reader(tenant, make_key, client_for):
    return client_for(make_key(tenant=tenant, scopes=["configs:read"], name="reader"))


@pytest.fixture
def writer(tenant, make_key, client_for):
    return client_for(make_key(tenant=tenant, scopes=["configs:read", "configs:write"], name="writer"))


def test_seed001_read__resolved_value__has_every_field_the_seed_reads(tenant, environments, reader):
    from tenants.services import config_create

    config_create(tenant=tenant, environment=environments["production"], service_name="user-service", key="database.url",
                  value="postgresql://db/users", actor="t")

    r = reader.get("/api/v1/config/database.url?environment=production&service_name=user-service")

    assert r.status_code == 200
    body = r.json()
    assert {k: body[k] for k in ("key", "value", "environment", "service_name", "version", "source", "is_secret")} == {
        "key": "database.url", "value": "postgresql://db/users", "environment": "production",
        "service_name": "user-service", "version": 1, "source": "tenant+environment+service", "is_secret": False,
    }


def test_secret__reader_without_secrets_scope__masked(tenant, reader, make_key, client_for):
    from tenants.services import config_create

    config_create(tenant=tenant, key="external.api_key", value=SECRET, is_secret=True, actor="t")
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
    from tenants.services import config_create

    config_create(tenant=tenant, key="k", value={"a": 1}, actor="t")
    first = reader.get("/api/v1/config/k")

    second = reader.get("/api/v1/config/k", HTTP_IF_NONE_MATCH=first["ETag"])

    assert second.status_code == 304
    assert second.content == b""
    for url in ("/api/v1/configs/", "/api/v1/config/service/svc", "/config/tenants/acme/configs/k"):
        r = reader.get(url)
        assert reader.get(url, HTTP_IF_NONE_MATCH=r["ETag"]).status_code == 304


def test_put__stale_if_match__412_and_value_kept(tenant, writer):
    from tenants.services import config_create

    entry = config_create(tenant=tenant, key="k", value=1, actor="t")
    ok = writer.put(f"/api/v1/config/{entry.pk}", {"value": 2}, format="json", HTTP_IF_MATCH=f'"{entry.pk}-1"')

    stale = writer.put(f"/api/v1/config/{entry.pk}", {"value": 3}, format="json", HTTP_IF_MATCH=f'"{entry.pk}-1"')
    stale_body = writer.patch(f"/api/v1/config/{entry.pk}", {"value": 3, "version": 1}, format="json")

    assert ok.status_code == 200 and ok["ETag"] == f'"{entry.pk}-2"'
    assert stale.status_code == 412 and stale_body.status_code == 412
    assert stale.json()["error"] == {"code": "stale_version", "message": f"config entry {entry.pk} is at version 2, not 1",
                                     "details": {"current_version": 2}}
    assert writer.get("/api/v1/config/k").json()["value"] == 2


def test_cached_read__second_request__makes_no_database_query(tenant, reader):
    from tenants.services import config_create

    config_create(tenant=tenant, key="k", value=1, actor="t")
    assert reader.get("/api/v1/config/k").status_code == 200

    with CaptureQueriesContext(connection) as ctx:
        r = reader.get("/api/v1/config/k")

    assert r.status_code == 200
    assert ctx.captured_queries == []


def test_uncached_read__small_constant_number_of_queries(tenant, reader, environments):
    from tenants.services import config_create

    for i in range(30):
        config_create(tenant=tenant, key=f"k{i}", value=i, actor="t")
    reader.get("/api/v1/config/k0")
    from config_hub.localcache import clear_all

    cache.clear()
    clear_all()

    with CaptureQueriesContext(connection) as ctx:
        reader.get("/api/v1/config/k1?environment=production&service_name=s")

    # Cold cache: API key, its last use, tenant by id, tenant by slug, environment,
    # the candidate entries of all eight scopes, the schema default. Not per entry.
    assert len(ctx.captured_queries) == 7


def test_write_paths__each_invalidates_the_cached_value(tenant, writer, django_capture_on_commit_callbacks):
    from tenants.models import ConfigEntry
    from tenants.services import config_create, config_delete, schema_set

    with django_capture_on_commit_callbacks(execute=True):
        entry = config_create(tenant=tenant, key="k", value=1, actor="t")
    assert writer.get("/api/v1/config/k").json()["value"] == 1
    with django_capture_on_commit_callbacks(execute=True):
        writer.put(f"/api/v1/config/{entry.pk}", {"value": 2}, format="json")
    assert writer.get("/api/v1/config/k").json()["value"] == 2
    with django_capture_on_commit_callbacks(execute=True):
        writer.put("/config/tenants/acme/configs/k", {"config_value": 3}, format="json")
    assert writer.get("/config/tenants/acme/configs/k").json()["config_value"] == 3
    with django_capture_on_commit_callbacks(execute=True):
        config_delete(entry=ConfigEntry.objects.get(pk=entry.pk), actor="t")
        schema_set(key="k", schema={"type": "integer"}, default_value=9, actor="t")
    assert (writer.get("/api/v1/config/k").json()["value"], writer.get("/api/v1/config/k").json()["source"]) == (9, "default")


def test_admin_edit__invalidates_cached_read(tenant, reader, admin_user, client, django_capture_on_commit_callbacks):
    from tenants.services import config_create

    entry = config_create(tenant=tenant, key="ui.theme", value="light", actor="t")
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
    from tenants.services import schema_set

    schema_set(key="limits", schema={"type": "object", "properties": {"max": {"type": "integer"}}}, actor="t")
    client.force_login(admin_user)

    r = client.post("/admin/tenants/configentry/add/", {
        "tenant": tenant.pk, "environment": "", "service_name": "", "key": "limits", "is_secret": "",
        "value": '{"max": "ten"}', "description": "",
    })

    assert r.status_code == 200
    assert r.context["adminform"].form.errors["value"] == ["$.max: 'ten' is not of type 'integer'"]


def test_bound_key__other_tenants_data__404_on_every_config_route(tenant, other_tenant, make_key, client_for):
    from tenants.services import config_create

    theirs = config_create(tenant=other_tenant, key="k", value="THEIRS", actor="t")
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
        writer.post("/api/v1/config/", {"key": "ok", "value": 1, "environment": "nowhere"}, format="json"),
        writer.put("/api/v1/config/abc", {"value": 1}, format="json"),
        writer.put("/config/tenants/acme/configs/k", {"wrong": 1}, format="json"),
    ]

    assert [r.status_code for r in cases] == [400, 400, 400, 400, 404, 404, 400]
    for r in cases:
        assert set(r.json()["error"]) == {"code", "message", "details"}


def test_create__same_scope_twice__409(tenant, writer):
    assert writer.post("/api/v1/config/", {"key": "k", "value": 1}, format="json").status_code == 201

    r = writer.post("/api/v1/config/", {"key": "k", "value": 2}, format="json")

    assert r.status_code == 409
    assert r.json()["error"]["code"] == "conflict"


def test_auth__no_credentials_401_missing_scope_403_bearer_key_accepted(tenant, reader, make_key, client_for):
    from rest_framework.test import APIClient

    from tenants.services import config_create

    config_create(tenant=tenant, key="k", value=1, actor="t")
    anonymous = APIClient().get("/api/v1/config/k")
    bearer = client_for(make_key(tenant=tenant, scopes=["configs:read"]), scheme="Bearer").get("/config/tenants/acme/configs/k")
    forbidden = reader.post("/api/v1/config/", {"key": "x", "value": 1}, format="json")

    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"].startswith("ApiKey")
    assert bearer.status_code == 200 and bearer.json() == {"config_key": "k", "config_value": 1, "version": 1, "source": "tenant"}
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["message"] == "This credential lacks the 'configs:write' scope"


def test_api_key__revoked__refused_on_the_next_request(tenant, make_key, client_for):
    from tenants.models import ApiKey
    from tenants.services import api_key_revoke

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
    from tenants.services import config_create

    config_create(tenant=tenant, key="k", value=1, actor="t")
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
    from tenants.services import schema_set

    settings.DEBUG = True  # Django logs every SQL statement with its parameters
    caplog.set_level(logging.DEBUG)
    logging.getLogger("django.db.backends").setLevel(logging.DEBUG)
    client = client_for(make_key(tenant=tenant, scopes=["configs:read", "configs:write", "secrets:read"]))
    schema_set(key="smtp.password", schema={"type": "string", "maxLength": 64}, actor="t")

    created = client.post("/api/v1/config/", {"key": "smtp.password", "value": SECRET, "is_secret": True}, format="json")
    client.get("/api/v1/config/smtp.password")
    client.put(f"/api/v1/config/{created.json()['id']}", {"value": SECRET * 5}, format="json")

    from config_hub.logging import RedactSecretsFilter

    redacted = []
    for record in caplog.records:
        RedactSecretsFilter().filter(record)
        redacted.append(record.getMessage())
    assert SECRET not in "\n".join(redacted)
    assert created.status_code == 201
    assert len(redacted) > 5  # the DEBUG logs (SQL included) were really captured
