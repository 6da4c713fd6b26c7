"""Every path a secret travels, then a search of everything the hub wrote for its plain value.

API write, admin edit, a refused write (error message), revert, import, key
rotation, events, webhook deliveries (real HTTP), the history API, and DEBUG logs
(SQL included). Then: every table of the database, every Redis key of the cache
and the broker, every log line (as the handlers' filter emits them), every
response to callers without ``secrets:read`` and every webhook body. Zero hits.
"""
from __future__ import annotations

import io
import json
import logging

import pytest
import yaml
from django.apps import apps
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection

from tests import factories as make
from tests.receiver import Receiver

pytestmark = pytest.mark.django_db

PLAIN = "s3cr3t-plaintext-7c1d9a"
PLAIN2 = "s3cr3t-rotated-value-e42f"
PLAIN3 = "s3cr3t-imported-value-0b8a"


def _every_row_of_every_table() -> str:
    chunks = []
    with connection.cursor() as cursor:
        for model in apps.get_models(include_auto_created=True):
            cursor.execute(f'SELECT * FROM "{model._meta.db_table}"')
            chunks.append(repr(cursor.fetchall()))
    return "\n".join(chunks)


def _every_redis_value() -> bytes:
    import redis

    out = []
    for url in (django_settings.REDIS_URL, django_settings.CELERY_BROKER_URL):
        client = redis.Redis.from_url(url)
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            if kind == b"string":
                out.append(client.get(key) or b"")
            elif kind == b"hash":
                out.append(repr(client.hgetall(key)).encode())
            elif kind == b"list":
                out.append(repr(client.lrange(key, 0, -1)).encode())
            out.append(key)
    return b"\n".join(out)


def test_secret__every_path__plain_value_nowhere(tenant, environments, make_key, client_for, admin_user, client,
                                                 caplog, settings, django_capture_on_commit_callbacks, tmp_path):
    from cryptography.fernet import Fernet

    from core.logging import RedactSecretsFilter
    from events.dispatch import delivery_attempt, event_dispatch
    from events.models import Event, WebhookDelivery
    from tenants.models import ConfigEntry

    settings.DEBUG = True
    caplog.set_level(logging.DEBUG)
    logging.getLogger("django.db.backends").setLevel(logging.DEBUG)
    writer = client_for(make_key(tenant=tenant, scopes=["configs:read", "configs:write", "events:read"], name="writer"))
    responses = []

    with Receiver() as receiver:
        make.webhook(tenant, receiver.url)
        make.schema("db.password", {"type": "string", "minLength": 8, "maxLength": 40})
        with django_capture_on_commit_callbacks(execute=True):
            # 1. API write
            created = writer.post("/api/v1/config/", {"key": "db.password", "value": PLAIN, "is_secret": True,
                                                       "environment": "production"}, format="json")
            entry_id = created.json()["id"]
            responses.append(created)
            # 2. a refused write: the error must not echo the value
            responses.append(writer.put(f"/api/v1/config/{entry_id}", {"value": PLAIN * 3}, format="json"))
            # 3. admin edit of the secret
            client.force_login(admin_user)
            responses.append(client.post(f"/admin/tenants/configentry/{entry_id}/change/", {
                "tenant": tenant.pk, "environment": environments["production"].pk, "service_name": "", "key": "db.password",
                "is_secret": "on", "value": json.dumps(PLAIN2), "description": "rotated"}))
            # 4. revert to the first version (a secret's value is not in the history: description only)
            first = ConfigEntry.history.filter(id=entry_id).order_by("history_id").first()
            responses.append(writer.post(f"/api/v1/configs/{entry_id}/revert", {"history_id": first.history_id}, format="json"))
            # 5. import with a secret
            doc = {"format": "config-hub", "version": 1, "flags": [],
                   "configs": [{"key": "api.token", "value": PLAIN3, "is_secret": True}]}
            path = tmp_path / "import.yaml"
            path.write_text(yaml.safe_dump(doc))
            call_command("import_tenant", "acme", str(path), stdout=io.StringIO())
        # 6. key rotation
        settings.FERNET_KEYS = [Fernet.generate_key().decode(), *settings.FERNET_KEYS]
        call_command("rotate_fernet_keys", stdout=io.StringIO())
        # 7. events and webhooks, through the real fan-out and HTTP deliveries
        for event in Event.objects.filter(dispatched_at__isnull=True):
            event_dispatch(event_id=event.pk)
        for delivery in WebhookDelivery.objects.all():
            delivery_attempt(delivery_id=delivery.pk)
        # 8. reads by a caller without secrets:read, the history and the events
        responses += [writer.get("/api/v1/config/db.password?environment=production"), writer.get("/api/v1/configs/"),
                      writer.get("/api/v1/config/service/x?environment=production"),
                      writer.get("/api/v1/history/?resource=config&key=db.password"), writer.get("/api/v1/events/?after=0")]
        webhook_bodies = b"\n".join(r["body"] for r in receiver.requests)

    assert ConfigEntry.objects.get(pk=entry_id).secret_value == PLAIN2
    assert len(receiver.requests) == 8
    filt = RedactSecretsFilter()
    log_text = []
    for record in caplog.records:
        filt.filter(record)
        log_text.append(record.getMessage())
    haystacks = {
        "database": _every_row_of_every_table(),
        "redis": _every_redis_value().decode("latin-1"),
        "logs": "\n".join(log_text),
        "responses": "\n".join(r.content.decode() for r in responses),
        "webhooks": webhook_bodies.decode(),
    }
    for plain in (PLAIN, PLAIN2, PLAIN3):
        hits = [name for name, text in haystacks.items() if plain in text]
        assert hits == [], f"{plain!r} found in {hits}"
    assert len(log_text) > 50  # DEBUG logging (SQL) was really on


# --- a secret made plain needs secrets:read (the reveal permission in the admin) ------------------


@pytest.fixture
def secret_entry(tenant, environments):
    return make.config(tenant, "pay.api_key", PLAIN, is_secret=True, environment=environments["production"])


def _writer(make_key, client_for, tenant, *extra):
    return client_for(make_key(tenant=tenant, scopes=["configs:read", "configs:write", "events:read", *extra],
                               name="writer-" + "-".join(extra)))


@pytest.mark.parametrize("method,body", [
    ("patch", {"is_secret": False}), ("patch", {"is_encrypted": False}), ("put", {"is_secret": False}),
    ("put", {"is_encrypted": False, "value": "new-plain"}),
])
def test_unsecret__key_without_secrets_read__403_and_the_entry_stays_secret(method, body, secret_entry, tenant, make_key,
                                                                           client_for, django_capture_on_commit_callbacks):
    from events.models import Event
    from tenants.models import ConfigEntry

    writer = _writer(make_key, client_for, tenant)
    events_before = Event.objects.count()

    with django_capture_on_commit_callbacks(execute=True):
        r = getattr(writer, method)(f"/api/v1/config/{secret_entry.pk}", body, format="json")

    entry = ConfigEntry.objects.get(pk=secret_entry.pk)
    assert r.status_code == 403, r.content
    assert r.json()["error"]["code"] == "secrets_read_required"
    assert "secrets:read" in r.json()["error"]["message"] and PLAIN not in r.content.decode()
    assert (entry.is_secret, entry.secret_value, entry.value, entry.version) == (True, PLAIN, None, 1)
    assert Event.objects.count() == events_before
    read = writer.get("/api/v1/config/pay.api_key?environment=production").json()
    assert (read["value"], read["masked"]) == (None, True)


def test_unsecret__key_with_secrets_read__made_plain(secret_entry, tenant, make_key, client_for):
    writer = _writer(make_key, client_for, tenant, "secrets:read")

    r = writer.patch(f"/api/v1/config/{secret_entry.pk}", {"is_secret": False}, format="json")

    assert r.status_code == 200, r.content
    assert (r.json()["is_secret"], r.json()["value"]) == (False, PLAIN)


def test_secret_new_value__key_without_secrets_read__written_and_still_masked(secret_entry, tenant, make_key, client_for):
    from tenants.models import ConfigEntry

    writer = _writer(make_key, client_for, tenant)

    api = writer.patch(f"/api/v1/config/{secret_entry.pk}", {"value": PLAIN2}, format="json")
    also_secret = writer.patch(f"/api/v1/config/{secret_entry.pk}", {"value": PLAIN3, "is_secret": True}, format="json")
    seed000 = writer.put("/config/tenants/acme/configs/pay.api_key", {"config_value": "seed-000-value", "environment": "production"},
                         format="json")

    entry = ConfigEntry.objects.get(pk=secret_entry.pk)
    assert [api.status_code, also_secret.status_code, seed000.status_code] == [200, 200, 200]
    assert (api.json()["value"], api.json()["masked"], seed000.json()["config_value"]) == (None, True, None)
    assert (entry.is_secret, entry.secret_value, entry.version) == (True, "seed-000-value", 4)


def _admin_form(entry, **changes):
    return {"tenant": entry.tenant_id, "environment": entry.environment_id, "service_name": "", "key": entry.key,
            "is_secret": "on", "value": "", "description": "", **changes}


def _staff(django_user_model, username, *codenames):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user(username, password="pw-staff-123", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.mark.parametrize("value", ["mask", json.dumps("a-new-plain-value")])
def test_unsecret__admin_staff_without_reveal__error_on_the_field_entry_stays_secret(value, secret_entry, client, django_user_model):
    from core.admin import MASK
    from tenants.models import ConfigEntry

    client.force_login(_staff(django_user_model, "editor", "view_configentry", "change_configentry"))

    r = client.post(f"/admin/tenants/configentry/{secret_entry.pk}/change/",
                    _admin_form(secret_entry, is_secret="", value=MASK if value == "mask" else value))

    entry = ConfigEntry.objects.get(pk=secret_entry.pk)
    assert r.status_code == 200
    assert r.context["adminform"].form.errors["is_secret"] == [
        "'pay.api_key' is a secret: making it plain needs the secrets:read scope (in the admin, the permission to reveal secrets)"]
    assert PLAIN not in r.content.decode()
    assert (entry.is_secret, entry.secret_value, entry.version) == (True, PLAIN, 1)


def test_unsecret__admin_staff_with_reveal__made_plain(secret_entry, client, django_user_model):
    from tenants.models import ConfigEntry

    client.force_login(_staff(django_user_model, "revealer", "view_configentry", "change_configentry", "reveal_secret"))

    r = client.post(f"/admin/tenants/configentry/{secret_entry.pk}/change/?reveal=1",
                    _admin_form(secret_entry, is_secret="", value=json.dumps(PLAIN)))

    entry = ConfigEntry.objects.get(pk=secret_entry.pk)
    assert r.status_code == 302, r.context["adminform"].form.errors
    assert (entry.is_secret, entry.value, entry.version) == (False, PLAIN, 2)


def test_unsecret__admin_import_plain_over_a_secret_without_reveal__refused_nothing_imported(secret_entry, tenant, client,
                                                                                          django_user_model):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tenants.models import ConfigEntry

    client.force_login(_staff(django_user_model, "importer", "view_configentry", "add_configentry", "change_configentry",
                              "add_flag", "change_flag"))
    doc = {"format": "config-hub", "version": 1, "flags": [], "configs": [
        {"key": "other.key", "value": 1},
        {"key": "pay.api_key", "value": "now-plain", "environment": "production"}]}

    r = client.post("/admin/transfer/", {"tenant": tenant.pk, "file": SimpleUploadedFile("acme.json", json.dumps(doc).encode())})

    entry = ConfigEntry.objects.get(pk=secret_entry.pk)
    assert r.status_code == 200
    assert "making it plain needs the secrets:read scope" in " ".join(r.context["import_form"].errors["file"])
    assert (entry.is_secret, entry.secret_value) == (True, PLAIN)
    assert not ConfigEntry.objects.filter(key="other.key").exists()
