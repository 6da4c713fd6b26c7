"""Change events: the outbox, signed webhooks with retries, the watch route, the audit trail."""
from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from django.db import transaction
from standardwebhooks.webhooks import Webhook

from tests import factories as make
from tests.receiver import Receiver
from tests.waiting import wait_until as _wait
from tests.waiting import wait_until_worker_idle

SECRET = "sk_live_never_leak_this_9f8e7d"


@pytest.mark.worker
def test_rollback__change_inside_failed_transaction__no_event_no_delivery(celery_worker_process, tenant):
    from events.models import Event, WebhookDelivery
    from events.tasks import outbox_sweep
    from tenants.services.configs import config_create

    with Receiver() as receiver:
        make.webhook(tenant, receiver.url, resource_types=["config"])
        with pytest.raises(RuntimeError), transaction.atomic():
            config_create(tenant=tenant, key="rolled.back", value=1, actor="t")
            raise RuntimeError("abort")
        make.config(tenant, "committed", 2)

        assert _wait(lambda: receiver.arrived.is_set()), celery_worker_process.log_path.read_text()[-2000:]
        outbox_sweep(older_than=0)  # whatever the after-commit path missed goes out now
        assert wait_until_worker_idle()  # whatever else the worker would send has gone out

    assert [json.loads(r["body"])["data"]["key"] for r in receiver.requests] == ["committed"]
    assert not Event.objects.filter(key="rolled.back").exists()
    assert list(WebhookDelivery.objects.values_list("event__key", "status")) == [("committed", "succeeded")]


@pytest.fixture
def celery_worker_env():
    return {"WEBHOOK_RETRY_SCHEDULE": "0.5,0.5,0.5,0.5", "WEBHOOK_TIMEOUT": "3"}


@pytest.mark.worker
def test_webhook__receiver_fails_twice__three_attempts_same_id_signature_verifies(celery_worker_process, tenant):
    from events.models import WebhookDelivery

    with Receiver(fail_first=2) as receiver:
        sub = make.webhook(tenant, receiver.url, resource_types=["config"])
        make.config(tenant, "payments.retries", 3, environment=None, actor="apikey:deployer")

        assert _wait(lambda: len(receiver.requests) >= 3 and receiver.arrived.is_set()), celery_worker_process.log_path.read_text()[-2000:]
        assert wait_until_worker_idle()  # whatever else the worker would send has gone out

    assert len(receiver.requests) == 3
    ids = {r["headers"]["webhook-id"] for r in receiver.requests}
    assert len(ids) == 1
    verifier = Webhook(sub.secret)
    for r in receiver.requests:
        payload = verifier.verify(r["body"], r["headers"])
        assert payload["type"] == "config.created"
        assert payload["data"]["key"] == "payments.retries"
        assert payload["data"]["actor"] == "apikey:deployer"
    delivery = WebhookDelivery.objects.get(subscription=sub)
    assert (delivery.status, delivery.attempts, delivery.last_response_code) == ("succeeded", 3, 200)
    assert [a.response_code for a in delivery.attempt_log.all()] == [500, 500, 200]


@pytest.mark.worker
def test_webhook__filter__only_matching_events_delivered_and_secret_never_sent(celery_worker_process, tenant, environments):
    with Receiver() as everything, Receiver() as prod_only:
        make.webhook(tenant, everything.url, resource_types=["config"])
        make.webhook(tenant, prod_only.url, environment="production", key_prefix="db.")
        make.config(tenant, "db.password", SECRET, is_secret=True, environment=environments["production"])
        make.config(tenant, "db.pool", 5, environment=environments["staging"])
        make.config(tenant, "cache.ttl", 5, environment=environments["production"])

        assert _wait(lambda: len(everything.requests) == 3 and len(prod_only.requests) == 1)
        assert wait_until_worker_idle()  # whatever else the worker would send has gone out

    assert [json.loads(r["body"])["data"]["key"] for r in prod_only.requests] == ["db.password"]
    bodies = b"".join(r["body"] for r in everything.requests + prod_only.requests)
    assert SECRET.encode() not in bodies
    assert json.loads(prod_only.requests[0]["body"])["data"]["details"] == {"id": json.loads(prod_only.requests[0]["body"])["data"]["details"]["id"], "is_secret": True, "scope": "tenant+environment", "value_changed": True}


@pytest.mark.django_db(transaction=True)
def test_watch__long_poll__returns_within_a_second_of_an_admin_change(live_server, tenant, make_key, admin_user):
    from django.test import Client
    from django_redis import get_redis_connection

    from events.models import Event
    from events.watch import CHANNEL

    entry = make.config(tenant, "ui.theme", "light")
    key = make_key(tenant=tenant, scopes=["events:read"])
    cursor = Event.objects.latest("id").pk
    result = {}

    def poll():
        started = time.monotonic()
        r = requests.get(f"{live_server.url}/api/v1/events/?after={cursor}&wait=20", headers={"Authorization": f"ApiKey {key}"}, timeout=30)
        result.update(body=r.json(), returned=time.monotonic(), started=started)

    t = threading.Thread(target=poll)
    t.start()
    # The poll is waiting once it listens on the events channel.
    assert _wait(lambda: get_redis_connection("default").pubsub_numsub(CHANNEL)[0][1] >= 1, timeout=10, step=0.05)
    admin = Client()
    admin.force_login(admin_user)
    changed_at = time.monotonic()
    r = admin.post(f"/admin/tenants/configentry/{entry.pk}/change/", {
        "tenant": tenant.pk, "environment": "", "service_name": "", "key": "ui.theme", "is_secret": "",
        "value": '"dark"', "description": "",
    })
    committed = time.monotonic()
    t.join(30)

    assert r.status_code == 302, r.content[:500]
    assert result["body"]["events"][0]["data"]["key"] == "ui.theme"
    assert result["body"]["events"][0]["data"]["actor"] == "user:root"
    assert result["returned"] - committed < 1.0
    # It really waited: listening before the change was made, answered after it.
    assert result["started"] < changed_at < result["returned"]


@pytest.mark.django_db
def test_watch__bound_caller__never_sees_another_tenants_events(tenant, other_tenant, make_key, client_for):
    make.config(other_tenant, "theirs", SECRET)
    make.config(tenant, "mine", 1)
    client = client_for(make_key(tenant=tenant, scopes=["events:read"]))

    keys = [e["data"]["key"] for e in client.get("/api/v1/events/?after=0").json()["events"]]

    assert "mine" in keys and "theirs" not in keys


@pytest.mark.django_db
def test_history__admin_api_and_revert__three_actors_field_level_and_no_secret(tenant, make_key, client_for, admin_user, django_user_model):
    from django.test import Client
    from rest_framework_simplejwt.tokens import AccessToken

    from tenants.models import ConfigEntry

    entry = make.config(tenant, "email.sender", "a@example.com", actor="apikey:bootstrap")
    secret = make.config(tenant, "smtp.password", SECRET, is_secret=True, actor="apikey:bootstrap")
    admin = Client()
    admin.force_login(admin_user)
    r = admin.post(f"/admin/tenants/configentry/{entry.pk}/change/", {
        "tenant": tenant.pk, "environment": "", "service_name": "", "key": "email.sender", "is_secret": "",
        "value": '"b@example.com"', "description": "",
    })
    assert r.status_code == 302
    api = client_for(make_key(tenant=tenant, scopes=["configs:write", "configs:read", "events:read"], name="deployer"))
    assert api.put(f"/api/v1/config/{entry.pk}", {"value": "c@example.com"}, format="json").status_code == 200
    api.put(f"/api/v1/config/{secret.pk}", {"value": SECRET + "-2"}, format="json")
    first = ConfigEntry.history.filter(id=entry.pk).order_by("history_id").first()
    auditor = django_user_model.objects.create_user("auditor", password="x", is_staff=True)
    from django.contrib.auth.models import Permission

    auditor.user_permissions.add(Permission.objects.get(codename="change_configentry"))
    jwt_client = client_for()
    jwt_client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(auditor)}")
    reverted = jwt_client.post(f"/api/v1/configs/{entry.pk}/revert", {"history_id": first.history_id}, format="json")

    rows = api.get("/api/v1/history/?resource=config&key=email.sender").json()["results"]
    secret_rows = api.get("/api/v1/history/?resource=config&key=smtp.password").json()["results"]

    assert reverted.status_code == 200 and reverted.json()["value"] == "a@example.com"
    assert [r["actor"] for r in rows] == ["apikey:bootstrap", "user:root", "apikey:deployer", "user:auditor"]
    assert rows[1]["changes"] == [{"field": "value", "old": "a@example.com", "new": "b@example.com"},
                                  {"field": "version", "old": 1, "new": 2}]
    assert rows[3]["reason"] == "revert to version 1"
    assert rows[3]["user"] == "auditor"
    assert {"field": "value", "changed": True} in secret_rows[1]["changes"]
    assert SECRET not in json.dumps(secret_rows)


@pytest.mark.django_db
def test_revert__old_value_breaks_current_schema__refused(tenant, make_key, client_for):
    from tenants.models import ConfigEntry
    from tenants.services.configs import config_update

    entry = make.config(tenant, "limits.max", "lots")
    config_update(entry=entry, value=10, actor="t")
    make.schema("limits.max", {"type": "integer"})
    first = ConfigEntry.history.filter(id=entry.pk).order_by("history_id").first()
    client = client_for(make_key(tenant=tenant, scopes=["configs:write"]))

    r = client.post(f"/api/v1/configs/{entry.pk}/revert", {"history_id": first.history_id}, format="json")

    assert r.status_code == 400
    assert r.json()["error"]["details"] == [{"path": "$", "message": "'lots' is not of type 'integer'"}]


@pytest.mark.django_db(transaction=True)
def test_event_after_commit__listener_woken_by_it__reads_the_new_value_not_the_cached_one(tenant, environments):
    """A listener (long poll, stream, a client re-fetching its bundle) runs on the
    event's after-commit hook: the caches must already be invalidated by then."""
    from events import services as events_services
    from tenants.models import ConfigEntry
    from tenants.selectors import config_bundle_cached
    from tenants.services.configs import config_update

    entry = make.config(tenant, "billing.timeout", 30, service_name="billing")
    assert {row["key"]: row["value"] for row in config_bundle_cached(
        tenant=tenant, environment="production", service_name="billing").rows}["billing.timeout"] == 30  # now cached
    seen = []

    def listener(event_id):
        bundle = config_bundle_cached(tenant=tenant, environment="production", service_name="billing")
        seen.append({row["key"]: row["value"] for row in bundle.rows}["billing.timeout"])

    events_services.register_after_commit_hook(listener)
    try:
        config_update(entry=ConfigEntry.objects.get(pk=entry.pk), value=45, actor="t")
    finally:
        events_services._after_commit_hooks.remove(listener)

    assert seen == [45]
