"""The fan-out: one event to many subscriptions goes out as batches over async HTTP
(events.dispatch.deliveries_attempt): every subscriber gets it once, signed with its
own secret, with one record per delivery; a receiver sees a bounded number of
connections, reused; a tenant at its cap elsewhere waits in the queue."""
from __future__ import annotations

import pytest
from standardwebhooks.webhooks import Webhook

from tests import factories as make
from tests.receiver import Receiver
from tests.waiting import wait_until, wait_until_worker_idle


def _log(worker) -> str:
    return worker.log_path.read_text()[-3000:]


@pytest.mark.worker
def test_fanout__one_change_to_50_subscriptions__each_delivered_once_signed_and_recorded(celery_worker_process, tenant, settings):
    from events.models import Event, WebhookDelivery

    settings.WEBHOOK_MAX_PER_TENANT = 50
    with Receiver(keep_alive=True) as receiver:
        subs = {f"/hook/{n}": make.webhook(tenant, f"{receiver.url}/{n}", resource_types=["config"]) for n in range(50)}

        make.config(tenant, "feature.banner", "on")
        assert wait_until(lambda: len(receiver.requests) >= 50, timeout=30), _log(celery_worker_process)
        event = Event.objects.get(resource_type="config", key="feature.banner")
        assert wait_until(lambda: WebhookDelivery.objects.filter(event=event, status="succeeded").count() == 50), \
            _log(celery_worker_process)
        assert wait_until_worker_idle()  # whatever else the worker would send has gone out

    assert sorted(r["path"] for r in receiver.requests) == sorted(subs)
    for request in receiver.requests:
        payload = Webhook(subs[request["path"]].secret).verify(request["body"], request["headers"])
        assert request["headers"]["webhook-id"] == str(event.pk)
        assert (payload["type"], payload["data"]["key"], payload["data"]["details"]["value"]) == (
            "config.created", "feature.banner", "on")
    deliveries = WebhookDelivery.objects.filter(event=event).prefetch_related("attempt_log")
    assert sorted(d.subscription_id for d in deliveries) == sorted(s.pk for s in subs.values())
    assert {(d.status, d.attempts, d.last_response_code) for d in deliveries} == {("succeeded", 1, 200)}
    assert all([a.response_code for a in d.attempt_log.all()] == [200] for d in deliveries)


@pytest.mark.django_db
def test_deliveries_attempt__20_to_one_receiver__two_connections_reused_never_more_than_the_tenant_cap(tenant, settings):
    from events.dispatch import deliveries_attempt, event_dispatch
    from events.models import DeliveryAttempt, Event

    settings.WEBHOOK_MAX_PER_TENANT = 20
    settings.WEBHOOK_TENANT_CONCURRENCY = 2
    with Receiver(keep_alive=True) as receiver:
        receiver.delay = 0.02
        for n in range(20):
            make.webhook(tenant, f"{receiver.url}/{n}", resource_types=["config"])
        make.config(tenant, "feature.banner", "on")
        fanout = event_dispatch(event_id=Event.objects.get(resource_type="config").pk)

        outcomes = deliveries_attempt(delivery_ids=fanout.to_send)

    assert [a.outcome for a in outcomes.values()] == ["succeeded"] * 20
    assert len(receiver.requests) == 20
    # Two lanes for the tenant, each on one kept-alive connection.
    assert receiver.most <= 2
    assert len({r["port"] for r in receiver.requests}) <= 2
    assert DeliveryAttempt.objects.filter(delivery_id__in=fanout.to_send, response_code=200).count() == 20


@pytest.mark.django_db
def test_deliveries_attempt__tenant_slots_all_held_elsewhere__busy_nothing_sent_state_unchanged(tenant, settings):
    from events.dispatch import deliveries_attempt, event_dispatch
    from events.fairness import tenant_slot_release, tenant_slot_take
    from events.models import DeliveryAttempt, Event, WebhookDelivery

    settings.WEBHOOK_TENANT_CONCURRENCY = 1
    settings.WEBHOOK_TENANT_BUSY_DELAY = 0.5
    with Receiver() as receiver:
        make.webhook(tenant, f"{receiver.url}/a", resource_types=["config"])
        make.webhook(tenant, f"{receiver.url}/b", resource_types=["config"])
        make.config(tenant, "feature.banner", "on")
        fanout = event_dispatch(event_id=Event.objects.get(resource_type="config").pk)
        assert tenant_slot_take(tenant.pk, "another-worker", 30)
        try:
            held = deliveries_attempt(delivery_ids=fanout.to_send)
            requests_while_held = len(receiver.requests)
            state_while_held = set(WebhookDelivery.objects.filter(pk__in=fanout.to_send).values_list("status", "attempts"))
            log_while_held = DeliveryAttempt.objects.filter(delivery_id__in=fanout.to_send).count()
        finally:
            tenant_slot_release(tenant.pk, "another-worker")
        freed = deliveries_attempt(delivery_ids=fanout.to_send)

    assert [(a.outcome, a.retry_in) for a in held.values()] == [("busy", 0.5)] * 2
    assert [a.outcome for a in freed.values()] == ["succeeded"] * 2
    assert sorted(r["path"] for r in receiver.requests) == ["/hook/a", "/hook/b"]
    # While held: nothing sent, released as they were (pending, no attempt counted, nothing recorded).
    assert (requests_while_held, state_while_held, log_while_held) == (0, {("pending", 0)}, 0)
    assert DeliveryAttempt.objects.filter(delivery_id__in=fanout.to_send).count() == 2
    assert set(WebhookDelivery.objects.filter(pk__in=fanout.to_send).values_list("attempts", flat=True)) == {1}


@pytest.mark.django_db
def test_deliveries_attempt__global_change__one_batch_reaches_both_tenants_each_signed_with_its_secret(tenant, other_tenant):
    from events.dispatch import deliveries_attempt, event_dispatch
    from events.models import Event

    with Receiver() as receiver:
        mine = make.webhook(tenant, f"{receiver.url}/acme", resource_types=["config"])
        theirs = make.webhook(other_tenant, f"{receiver.url}/globex", resource_types=["config"])
        make.config(None, "feature.banner", "on", actor="apikey:platform")
        fanout = event_dispatch(event_id=Event.objects.get(resource_type="config", key="feature.banner").pk)

        outcomes = deliveries_attempt(delivery_ids=fanout.to_send)

    assert sorted(a.outcome for a in outcomes.values()) == ["succeeded", "succeeded"]
    by_path = {r["path"]: r for r in receiver.requests}
    for path, sub in (("/hook/acme", mine), ("/hook/globex", theirs)):
        assert Webhook(sub.secret).verify(by_path[path]["body"], by_path[path]["headers"])["data"]["key"] == "feature.banner"
    assert by_path["/hook/acme"]["body"] == by_path["/hook/globex"]["body"]
