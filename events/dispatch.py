"""From a committed event to every subscriber, exactly once per subscriber: the
fan-out and one delivery's attempt. Nothing here queues a task: each function
returns what should run next, and ``tasks.py`` (the Celery floor) queues it.

1. ``event_record`` writes the event in the change's transaction (the outbox).
2. After commit, ``tasks.event_dispatch_queue`` queues ``events.dispatch`` and
   ``watch.watchers_wake`` wakes long-poll watchers. Either may fail (Redis or the
   broker down): nothing is lost, the beat's ``events.outbox_sweep`` finds every
   event whose ``dispatched_at`` is still empty.
3. :func:`event_dispatch` creates one delivery per matching subscription
   of the event's tenant, or of every tenant for a global event (a global
   config entry, schema or environment; see ``models.global_events_q``)
   (a unique constraint makes a second dispatch a no-op); the task queues one
   ``events.deliver`` task per delivery, so one slow receiver never holds up
   another.
4. :func:`delivery_attempt` takes one of its tenant's ``WEBHOOK_TENANT_CONCURRENCY``
   delivery slots (``fairness.py``; a tenant at its cap is re-queued for a moment,
   so its slow receivers never hold every worker), claims the delivery with a
   conditional UPDATE (only one worker wins), POSTs it signed per Standard Webhooks
   under the outbound policy (``core.outbound``: a refused destination is
   recorded as ``blocked``, nothing else), records the attempt, and says when to
   retry, with growing delays; a subscription failing for ``WEBHOOK_DISABLE_AFTER``
   seconds is disabled.
"""
from __future__ import annotations

import json
import logging
import secrets as pysecrets
import time
from datetime import timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core import outbound
from core.metrics import WEBHOOK_DELIVERIES

from .fairness import tenant_slot_release, tenant_slot_take
from .messages import event_payload, sign
from .models import DeliveryAttempt, Event, WebhookDelivery, WebhookSubscription

logger = logging.getLogger(__name__)

BLOCKED_ERROR = "blocked by the outbound policy"


class Fanout(NamedTuple):
    """What one dispatch did: deliveries created, and the ones to send now."""

    created: int
    to_send: list[int]


class Attempt(NamedTuple):
    """What one delivery attempt did (``succeeded``, ``retrying``, ``busy``, ``failed``,
    ``disabled``, ``blocked``, ``not_due``) and, for ``retrying`` and ``busy``, in how
    many seconds to try again."""

    outcome: str
    retry_in: float | None = None


# --- fan-out ------------------------------------------------------------------------------


def event_dispatch(*, event_id: int) -> Fanout:
    """Create the deliveries of one event (idempotent): how many were created, and
    the deliveries to send once the transaction commits."""
    now = timezone.now()
    with transaction.atomic():
        event = Event.objects.select_for_update(skip_locked=True).filter(pk=event_id, dispatched_at__isnull=True).first()
        if event is None:
            return Fanout(0, [])  # already dispatched, or another worker is on it
        if event.tenant_id is not None:
            candidates = WebhookSubscription.objects.filter(tenant_id=event.tenant_id, is_active=True)
        elif event.is_global:
            # A global entry, schema or environment changes what every tenant
            # resolves: every tenant's matching subscriptions receive it.
            candidates = WebhookSubscription.objects.filter(is_active=True)
        else:
            candidates = WebhookSubscription.objects.none()  # platform-only (platform keys, deleted tenants)
        # Once per subscription: a re-dispatch (dispatched_at lost, the sweep) skips
        # subscriptions that have their delivery; the unique constraint backs it up.
        existing = set(WebhookDelivery.objects.filter(event=event).values_list("subscription_id", flat=True))
        subs = [s for s in candidates if s.pk not in existing and s.matches(event)]
        WebhookDelivery.objects.bulk_create(
            [WebhookDelivery(event=event, subscription=s, next_attempt_at=now) for s in subs], ignore_conflicts=True
        )
        event.dispatched_at = now
        event.save(update_fields=["dispatched_at"])
        ids = list(
            WebhookDelivery.objects.filter(event=event, status=WebhookDelivery.PENDING, attempts=0).values_list("pk", flat=True)
        )
    return Fanout(len(subs), ids)


def _retry_schedule() -> list[float]:
    return [float(x) for x in settings.WEBHOOK_RETRY_SCHEDULE]


# --- one delivery -----------------------------------------------------------------------


def delivery_attempt(*, delivery_id: int) -> Attempt:
    """Send one delivery if it is due, its tenant has a free slot and this worker wins
    the claim. Returns the outcome, and when to try again."""
    now = timezone.now()
    due = WebhookDelivery.objects.filter(
        pk=delivery_id, status__in=[WebhookDelivery.PENDING, WebhookDelivery.RETRYING, WebhookDelivery.SENDING],
        next_attempt_at__lte=now,
    )
    tenant_id = due.values_list("subscription__tenant_id", flat=True).first()
    if tenant_id is None:
        return Attempt("not_due")
    hold = settings.WEBHOOK_TIMEOUT * 2 + 5
    token = f"{delivery_id}:{pysecrets.token_hex(4)}"
    if not tenant_slot_take(tenant_id, token, hold):
        # The tenant has WEBHOOK_TENANT_CONCURRENCY deliveries in flight: wait in
        # the queue, not in a worker slot.
        return Attempt("busy", settings.WEBHOOK_TENANT_BUSY_DELAY)
    try:
        return _delivery_send(delivery_id=delivery_id, due=due, lease=now + timedelta(seconds=hold))
    finally:
        tenant_slot_release(tenant_id, token)


def _delivery_send(*, delivery_id: int, due, lease) -> Attempt:
    claimed = due.update(status=WebhookDelivery.SENDING, next_attempt_at=lease)
    if not claimed:
        return Attempt("not_due")
    delivery = WebhookDelivery.objects.select_related("event", "subscription").get(pk=delivery_id)
    sub = delivery.subscription
    if not sub.is_active:
        WebhookDelivery.objects.filter(pk=delivery_id).update(status=WebhookDelivery.FAILED, last_error="subscription disabled")
        return Attempt("disabled")
    body = json.dumps(event_payload(delivery.event), separators=(",", ":"), sort_keys=True)
    msg_id = str(delivery.event_id)
    ts = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(sub.secret, msg_id, ts, body),
        "user-agent": "config-hub-webhooks/1",
    }
    started = time.monotonic()
    result = outbound.send("POST", sub.url, headers=headers, body=body.encode(),
                           connect_timeout=settings.WEBHOOK_CONNECT_TIMEOUT, total_timeout=settings.WEBHOOK_TIMEOUT)
    duration = (time.monotonic() - started) * 1000
    done = timezone.now()
    if result.blocked:
        # Refused by the outbound policy: nothing was sent, and the log says only
        # that (no status, no error class, no duration). Not retried: "send again"
        # after fixing the URL or OUTBOUND_ALLOW.
        with transaction.atomic():
            DeliveryAttempt.objects.create(delivery_id=delivery_id, response_code=None, error=BLOCKED_ERROR, duration_ms=0)
            WebhookDelivery.objects.filter(pk=delivery_id).update(
                status=WebhookDelivery.BLOCKED, attempts=delivery.attempts + 1, last_response_code=None, last_error=BLOCKED_ERROR
            )
        WEBHOOK_DELIVERIES.labels("blocked").inc()
        logger.warning("delivery %s: %s refused by the outbound policy", delivery_id, sub.url)
        return Attempt("blocked")
    code, ok, error = result.status, result.ok, result.error
    with transaction.atomic():
        DeliveryAttempt.objects.create(delivery_id=delivery_id, response_code=code, error=error[:500], duration_ms=duration)
        attempts = delivery.attempts + 1
        if ok:
            WebhookDelivery.objects.filter(pk=delivery_id).update(
                status=WebhookDelivery.SUCCEEDED, attempts=attempts, last_response_code=code, last_error="", delivered_at=done
            )
            WebhookSubscription.objects.filter(pk=sub.pk, failing_since__isnull=False).update(failing_since=None)
            WEBHOOK_DELIVERIES.labels("success").inc()
            return Attempt("succeeded")
        WEBHOOK_DELIVERIES.labels("failure").inc()
        failing_since = sub.failing_since or done
        if sub.failing_since is None:
            WebhookSubscription.objects.filter(pk=sub.pk, failing_since__isnull=True).update(failing_since=done)
        schedule = _retry_schedule()
        if (done - failing_since).total_seconds() >= settings.WEBHOOK_DISABLE_AFTER:
            WebhookSubscription.objects.filter(pk=sub.pk).update(is_active=False, disabled_at=done)
            WebhookDelivery.objects.filter(pk=delivery_id).update(
                status=WebhookDelivery.FAILED, attempts=attempts, last_response_code=code, last_error=error[:500]
            )
            logger.warning("webhook subscription %s disabled after failing since %s", sub.pk, failing_since)
            return Attempt("disabled")
        if attempts > len(schedule):
            WebhookDelivery.objects.filter(pk=delivery_id).update(
                status=WebhookDelivery.FAILED, attempts=attempts, last_response_code=code, last_error=error[:500]
            )
            return Attempt("failed")
        delay = schedule[attempts - 1]
        WebhookDelivery.objects.filter(pk=delivery_id).update(
            status=WebhookDelivery.RETRYING, attempts=attempts, last_response_code=code, last_error=error[:500],
            next_attempt_at=done + timedelta(seconds=delay),
        )
    return Attempt("retrying", delay)
