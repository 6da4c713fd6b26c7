"""Webhooks end to end: global changes reach every tenant, idempotent dispatch, "send
again", disabling after WEBHOOK_DISABLE_AFTER; events of schema and webhook changes;
history that forgets a value once its entry becomes secret."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from tests import factories as make
from tests.receiver import Receiver
from tests.waiting import wait_until as _wait
from tests.waiting import wait_until_worker_idle

SECRET = "sk_live_never_leak_this_4a5b6c"


def _log(worker) -> str:
    return worker.log_path.read_text()[-3000:]


@pytest.fixture
def celery_worker_env():
    return {"WEBHOOK_RETRY_SCHEDULE": "0.5,0.5,0.5,0.5", "WEBHOOK_TIMEOUT": "3"}


# --- global changes (tenant-less events) ------------------------------------------------


@pytest.mark.worker
def test_global_config_change__reaches_matching_subscribers_of_two_tenants_once(celery_worker_process, tenant, other_tenant):
    from events.dispatch import event_dispatch
    from events.models import Event, WebhookDelivery
    from events.tasks import outbox_sweep

    with Receiver() as acme, Receiver() as globex, Receiver() as flags_only:
        sub_acme = make.webhook(tenant, acme.url, resource_types=["config"], key_prefix="feature.")
        sub_globex = make.webhook(other_tenant, globex.url, resource_types=["config", "schema"])
        make.webhook(other_tenant, flags_only.url, resource_types=["flag"])
        make.config(None, "feature.banner", "on", actor="apikey:platform")
        make.config(None, "db.password", SECRET, is_secret=True, actor="apikey:platform")

        assert _wait(lambda: len(acme.requests) >= 1 and len(globex.requests) >= 2), _log(celery_worker_process)
        # Dispatching again (a second task, the sweep after a lost dispatched_at) sends nothing more.
        banner = Event.objects.get(key="feature.banner")
        assert event_dispatch(event_id=banner.pk).created == 0
        Event.objects.filter(tenant__isnull=True, resource_type="config").update(dispatched_at=None)
        outbox_sweep(older_than=0)
        assert wait_until_worker_idle()  # whatever else the worker would send has gone out

    assert [json.loads(r["body"])["data"]["key"] for r in acme.requests] == ["feature.banner"]
    assert sorted(json.loads(r["body"])["data"]["key"] for r in globex.requests) == ["db.password", "feature.banner"]
    assert flags_only.requests == []
    acme_body = Webhook(sub_acme.secret).verify(acme.requests[0]["body"], acme.requests[0]["headers"])
    assert acme_body["type"] == "config.created"
    assert acme_body["data"]["tenant"] is None
    assert acme_body["data"]["details"]["value"] == "on"
    for r in globex.requests:
        Webhook(sub_globex.secret).verify(r["body"], r["headers"])
    banner_ids = {r["headers"]["webhook-id"] for r in acme.requests + globex.requests
                  if json.loads(r["body"])["data"]["key"] == "feature.banner"}
    assert banner_ids == {str(banner.pk)}
    assert SECRET.encode() not in b"".join(r["body"] for r in globex.requests)
    assert WebhookDelivery.objects.filter(event__tenant__isnull=True, event__resource_type="config").count() == 3


@pytest.mark.django_db
def test_watch__global_change_shown_to_every_tenant__tenant_and_platform_events_not(tenant, other_tenant, make_key, client_for):
    from tenants.services.tenants import tenant_delete

    make.config(None, "feature.banner", "on")
    make.config(other_tenant, "theirs", SECRET)
    make_key(tenant=None, scopes=["admin"], name="platform-ops")
    doomed = make.tenant("initech")
    tenant_delete(tenant=doomed, actor="t")
    acme = client_for(make_key(tenant=tenant, scopes=["events:read"]))
    globex = client_for(make_key(tenant=other_tenant, scopes=["events:read"]))

    acme_events = acme.get("/api/v1/events/?after=0").json()["events"]
    globex_keys = [e["data"]["key"] for e in globex.get("/api/v1/events/?after=0").json()["events"]]

    assert "feature.banner" in [e["data"]["key"] for e in acme_events]
    assert "feature.banner" in globex_keys and "theirs" in globex_keys
    body = json.dumps(acme_events)
    assert "theirs" not in body and SECRET not in body
    assert "platform-ops" not in body and "initech" not in body


# --- events of schema and webhook changes ------------------------------------------------


@pytest.mark.django_db
def test_events__schema_change_and_webhook_change__each_announced(tenant, other_tenant, make_key, client_for):
    from events.models import Event

    admin = client_for(make_key(tenant=tenant, scopes=["admin", "events:read"]))
    other = client_for(make_key(tenant=other_tenant, scopes=["events:read"]))
    cursor = Event.objects.latest("id").pk

    make.schema("limits.max", {"type": "integer"}, actor="apikey:schemas")
    created = admin.post("/api/v1/webhooks/", {"url": "http://127.0.0.1:9/hook", "resource_types": ["config"]}, format="json")
    updated = admin.patch(f"/api/v1/webhooks/{created.json()['id']}", {"key_prefix": "db."}, format="json")

    assert created.status_code == 201 and updated.status_code == 200
    mine = admin.get(f"/api/v1/events/?after={cursor}").json()["events"]
    theirs = other.get(f"/api/v1/events/?after={cursor}").json()["events"]
    assert [(e["type"], e["data"]["key"]) for e in mine] == [
        ("schema.created", "limits.max"), ("webhook.created", "http://127.0.0.1:9/hook"),
        ("webhook.updated", "http://127.0.0.1:9/hook"),
    ]
    assert mine[0]["data"]["actor"] == "apikey:schemas"
    assert [e["type"] for e in theirs] == ["schema.created"]  # global: yes; another tenant's webhook: no
    assert "whsec_" not in json.dumps(mine)


# --- dispatch idempotence, send again, disabling ----------------------------------------


@pytest.mark.worker
def test_dispatch_twice__second_run_sends_nothing(celery_worker_process, tenant):
    from events.dispatch import event_dispatch
    from events.models import Event, WebhookDelivery
    from events.tasks import event_dispatch_task

    with Receiver() as receiver:
        sub = make.webhook(tenant, receiver.url, resource_types=["config"])
        make.config(tenant, "once", 1)
        assert _wait(lambda: len(receiver.requests) == 1), _log(celery_worker_process)
        event = Event.objects.get(key="once")

        assert event_dispatch(event_id=event.pk).created == 0
        Event.objects.filter(pk=event.pk).update(dispatched_at=None)  # as if the first run's mark were lost
        event_dispatch_task.apply_async(args=(event.pk,))
        assert _wait(lambda: Event.objects.get(pk=event.pk).dispatched_at is not None), _log(celery_worker_process)
        make.config(tenant, "sentinel", 1)  # queued after the re-dispatch
        assert _wait(lambda: len(receiver.requests) >= 2), _log(celery_worker_process)
        assert wait_until_worker_idle()  # whatever else the worker would send has gone out

    assert [json.loads(r["body"])["data"]["key"] for r in receiver.requests] == ["once", "sentinel"]
    assert WebhookDelivery.objects.filter(subscription=sub, event=event).count() == 1


@pytest.mark.worker
def test_admin_send_again__redelivers_with_same_webhook_id(celery_worker_process, tenant, admin_user):
    from events.models import WebhookDelivery

    with Receiver() as receiver:
        sub = make.webhook(tenant, receiver.url, resource_types=["config"])
        make.config(tenant, "resend.me", 1)
        assert _wait(lambda: len(receiver.requests) == 1), _log(celery_worker_process)
        delivery = WebhookDelivery.objects.get(subscription=sub)
        assert _wait(lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == "succeeded")

        admin = Client()
        admin.force_login(admin_user)
        r = admin.post("/admin/events/webhookdelivery/", {"action": "send_again", "_selected_action": [delivery.pk], "index": "0"})
        assert r.status_code == 302, r.content[:500]
        assert _wait(lambda: len(receiver.requests) == 2), _log(celery_worker_process)
        assert wait_until_worker_idle()  # whatever else the worker would send has gone out

    first, second = receiver.requests
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"] == str(delivery.event_id)
    assert first["body"] == second["body"]
    Webhook(sub.secret).verify(second["body"], second["headers"])
    assert _wait(lambda: WebhookDelivery.objects.get(pk=delivery.pk).attempts == 2)
    delivery.refresh_from_db()
    assert (delivery.status, [a.response_code for a in delivery.attempt_log.all()]) == ("succeeded", [200, 200])
    page = admin.get(f"/admin/events/webhookdelivery/{delivery.pk}/change/")
    # The last response code and the two attempts of the log, each captioned by what happened.
    assert page.status_code == 200 and page.content.decode().count(">200<") == 3
    assert page.content.decode().count(": HTTP 200 in ") == 2 and "DeliveryAttempt object" not in page.content.decode()


@pytest.mark.django_db
def test_webhook__failing_for_disable_after__disabled_shown_and_sent_nothing_more(tenant, make_key, client_for, admin_user, settings):
    from events.dispatch import delivery_attempt, event_dispatch
    from events.models import Event, WebhookDelivery, WebhookSubscription

    api = client_for(make_key(tenant=tenant, scopes=["events:read"]))
    with Receiver(fail_first=1000) as receiver:
        sub = make.webhook(tenant, receiver.url)
        make.config(tenant, "k1", 1)
        event = Event.objects.get(key="k1")
        event_dispatch(event_id=event.pk)
        delivery = WebhookDelivery.objects.get(subscription=sub, event=event)

        assert delivery_attempt(delivery_id=delivery.pk).outcome == "retrying"
        failing = api.get(f"/api/v1/webhooks/{sub.pk}").json()
        # A day (WEBHOOK_DISABLE_AFTER) of failures later:
        WebhookSubscription.objects.filter(pk=sub.pk).update(
            failing_since=timezone.now() - timedelta(seconds=settings.WEBHOOK_DISABLE_AFTER + 60))
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        assert delivery_attempt(delivery_id=delivery.pk).outcome == "disabled"

        make.config(tenant, "k2", 2)
        assert event_dispatch(event_id=Event.objects.get(key="k2").pk).created == 0

    assert settings.WEBHOOK_DISABLE_AFTER == 24 * 3600
    assert len(receiver.requests) == 2
    assert failing["state"] == "failing" and failing["is_active"] is True
    shown = api.get(f"/api/v1/webhooks/{sub.pk}").json()
    assert (shown["state"], shown["is_active"]) == ("disabled", False) and shown["disabled_at"]
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == "failed"
    admin = Client()
    admin.force_login(admin_user)
    assert '<span style="color:#c62828">disabled</span>' in admin.get("/admin/events/webhooksubscription/").content.decode()


# --- history forgets a value once its entry becomes secret ------------------------------


@pytest.mark.django_db
def test_history__entry_made_secret_without_new_value__earlier_values_gone_everywhere(tenant, make_key, client_for, admin_user):
    from tenants.models import ConfigEntry
    from tenants.services.configs import config_update

    entry = make.config(tenant, "smtp.token", "tok-plain-1")
    config_update(entry=entry, value="tok-plain-2", actor="t")
    api = client_for(make_key(tenant=tenant, scopes=["configs:read", "configs:write", "events:read"]))

    r = api.put(f"/api/v1/config/{entry.pk}", {"is_secret": True}, format="json")

    assert r.status_code == 200, r.content
    rows = api.get("/api/v1/history/?resource=config&key=smtp.token").json()["results"]
    events = api.get("/api/v1/events/?after=0").json()["events"]
    admin = Client()
    admin.force_login(admin_user)
    first = ConfigEntry.history.filter(id=entry.pk).order_by("history_id").first()
    pages = [admin.get(f"/admin/tenants/configentry/{entry.pk}/history/"),
             admin.get(f"/admin/tenants/configentry/{entry.pk}/history/{first.history_id}/")]
    assert all(p.status_code == 200 for p in pages)
    for text in [json.dumps(rows), json.dumps(events)] + [p.content.decode() for p in pages]:
        assert "tok-plain" not in text
    assert [r["value"] for r in rows] == [None, None, None]
    assert sorted(rows[1]["changes"], key=lambda c: c["field"]) == [
        {"field": "value", "changed": True}, {"field": "version", "old": 1, "new": 2}]
    assert {"field": "is_secret", "old": False, "new": True} in rows[2]["changes"]
    assert {"field": "value", "changed": True} in rows[2]["changes"]
    assert list(ConfigEntry.history.filter(id=entry.pk).values_list("value", flat=True)) == [None, None, None]
    assert "(hidden)" in pages[0].content.decode()
    entry.refresh_from_db()
    assert entry.is_secret and entry.secret_value == "tok-plain-2"  # the value itself is kept, encrypted


@pytest.mark.django_db
def test_history__admin_makes_entry_secret_with_new_value__old_plain_value_gone(tenant, make_key, client_for, admin_user):
    entry = make.config(tenant, "api.token", "old-plain-token")
    admin = Client()
    admin.force_login(admin_user)

    r = admin.post(f"/admin/tenants/configentry/{entry.pk}/change/", {
        "tenant": tenant.pk, "environment": "", "service_name": "", "key": "api.token", "is_secret": "on",
        "value": json.dumps(SECRET), "description": "",
    })

    assert r.status_code == 302, r.content[:500]
    api = client_for(make_key(tenant=tenant, scopes=["events:read"]))
    rows = api.get("/api/v1/history/?resource=config&key=api.token").json()["results"]
    page = admin.get(f"/admin/tenants/configentry/{entry.pk}/history/").content.decode()
    events = json.dumps(api.get("/api/v1/events/?after=0").json())
    for text in (json.dumps(rows), page, events):
        assert "old-plain-token" not in text and SECRET not in text
    assert rows[1]["actor"] == "user:root"
    assert {"field": "value", "changed": True} in rows[1]["changes"]
    assert "(hidden)" in page


@pytest.mark.django_db
def test_history__switch_to_secret_rolled_back__history_keeps_plain_value(tenant):
    from tenants.models import ConfigEntry
    from tenants.services.configs import config_update

    entry = make.config(tenant, "still.plain", "visible")

    with pytest.raises(RuntimeError), transaction.atomic():
        config_update(entry=ConfigEntry.objects.get(pk=entry.pk), is_secret=True, actor="t")
        raise RuntimeError("abort")

    assert list(ConfigEntry.history.filter(id=entry.pk).values_list("value", flat=True)) == ["visible"]
    assert ConfigEntry.objects.get(pk=entry.pk).is_secret is False


@pytest.mark.django_db
def test_history_migration__rows_from_before_the_scrub__values_forgotten(tenant, make_key, client_for):
    import importlib

    from django.apps import apps

    from tenants.models import ConfigEntry
    from tenants.services.configs import config_update

    entry = make.config(tenant, "legacy.token", "legacy-plain")
    config_update(entry=entry, is_secret=True, actor="t")
    # As written before scrubbing existed: the plain row still holds its value.
    first = ConfigEntry.history.filter(id=entry.pk).order_by("history_id").first()
    ConfigEntry.history.filter(history_id=first.history_id).update(value="legacy-plain")
    api = client_for(make_key(tenant=tenant, scopes=["events:read"]))
    assert "legacy-plain" not in json.dumps(api.get("/api/v1/history/?resource=config&key=legacy.token").json())

    importlib.import_module("events.migrations.0003_scrub_history_of_secret_entries").scrub(apps, None)

    assert list(ConfigEntry.history.filter(id=entry.pk).values_list("value", flat=True)) == [None, None]
