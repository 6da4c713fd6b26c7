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

    from config_hub.logging import RedactSecretsFilter
    from events.dispatch import delivery_attempt, event_dispatch
    from events.models import Event, WebhookDelivery
    from events.services import webhook_create
    from tenants.models import ConfigEntry
    from tenants.services import schema_set

    settings.DEBUG = True
    caplog.set_level(logging.DEBUG)
    logging.getLogger("django.db.backends").setLevel(logging.DEBUG)
    writer = client_for(make_key(tenant=tenant, scopes=["configs:read", "configs:write", "events:read"], name="writer"))
    responses = []

    with Receiver() as receiver:
        webhook_create(tenant=tenant, url=receiver.url, actor="t")
        schema_set(key="db.password", schema={"type": "string", "minLength": 8, "maxLength": 40}, actor="t")
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
    assert len(receiver.requests) >= 4
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
