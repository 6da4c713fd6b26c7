"""From a committed event to every subscriber, exactly once per subscriber.

1. ``event_record`` writes the event in the change's transaction (the outbox).
2. After commit, :func:`on_event_committed` publishes a Redis wake-up for
   long-poll watchers and queues ``events.dispatch``. Either may fail (Redis or
   the broker down): nothing is lost, the beat's ``events.outbox_sweep`` finds
   every event whose ``dispatched_at`` is still empty.
3. :func:`event_dispatch` creates one delivery per matching subscription
   of the event's tenant, or of every tenant for a global event (a global
   config entry, schema or environment; see ``models.global_events_q``)
   (a unique constraint makes a second dispatch a no-op) and queues one
   ``events.deliver`` task per delivery, so one slow receiver never holds up
   another.
4. :func:`delivery_attempt` claims the delivery with a conditional UPDATE (only
   one worker wins), POSTs it signed per Standard Webhooks, records the attempt,
   and schedules a retry with growing delays; a subscription failing for
   ``WEBHOOK_DISABLE_AFTER`` seconds is disabled.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets as pysecrets
import time
from datetime import timedelta

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import DeliveryAttempt, Event, WebhookDelivery, WebhookSubscription

logger = logging.getLogger(__name__)

CHANNEL = "confighub:events"


# --- signing --------------------------------------------------------------------------


def new_secret() -> str:
    return "whsec_" + base64.b64encode(pysecrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` (Standard Webhooks)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def event_payload(event: Event) -> dict:
    """The event as subscribers and watchers see it (never a secret value: services
    put only ``value_changed`` for secrets into ``data``)."""
    return {
        "id": event.pk,
        "type": f"{event.resource_type}.{event.action}",
        "timestamp": event.created_at.isoformat() if event.created_at else None,
        "data": {
            "tenant": event.tenant_slug or None,
            "resource_type": event.resource_type,
            "action": event.action,
            "key": event.key,
            "environment": event.environment or None,
            "service_name": event.service_name or None,
            "version": event.version,
            "actor": event.actor,
            "details": event.data,
        },
    }


# --- after commit -----------------------------------------------------------------------


def _redis():
    if not settings.REDIS_URL:
        return None
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def on_event_committed(event_id: int) -> None:
    """After-commit hook: wake watchers, queue the fan-out. Failures are left to the sweep."""
    from .watch import notify_committed

    notify_committed()  # this process's watchers, with or without Redis
    try:
        client = _redis()
        if client is not None:
            client.publish(CHANNEL, str(event_id))
    except Exception:  # noqa: BLE001 - Redis down: watchers fall back to polling
        logger.info("event %s: redis publish failed", event_id)
    from .tasks import event_dispatch_task

    if settings.CELERY_TASK_ALWAYS_EAGER:
        event_dispatch_task.apply(args=(event_id,))
        return
    try:
        event_dispatch_task.apply_async(args=(event_id,), retry=False)
    except Exception:  # noqa: BLE001 - broker down: the outbox sweep sends it later
        logger.warning("event %s: broker unavailable, left for the outbox sweep", event_id)


def _queue_delivery(delivery_id: int) -> None:
    from .tasks import delivery_attempt_task

    try:
        delivery_attempt_task.apply_async(args=(delivery_id,), retry=False)
    except Exception:  # noqa: BLE001
        logger.warning("delivery %s: broker unavailable, left for the outbox sweep", delivery_id)


# --- fan-out ------------------------------------------------------------------------------


def event_dispatch(*, event_id: int) -> int:
    """Create the deliveries of one event (idempotent). Returns how many were created."""
    now = timezone.now()
    with transaction.atomic():
        event = Event.objects.select_for_update(skip_locked=True).filter(pk=event_id, dispatched_at__isnull=True).first()
        if event is None:
            return 0  # already dispatched, or another worker is on it
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
        transaction.on_commit(lambda: [_queue_delivery(i) for i in ids])
    return len(subs)


def _retry_schedule() -> list[float]:
    return [float(x) for x in settings.WEBHOOK_RETRY_SCHEDULE]


def delivery_attempt(*, delivery_id: int) -> str:
    """Send one delivery if it is due and this worker wins the claim. Returns the outcome."""
    from config_hub.metrics import WEBHOOK_DELIVERIES

    now = timezone.now()
    lease = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT * 2 + 5)
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status__in=[WebhookDelivery.PENDING, WebhookDelivery.RETRYING, WebhookDelivery.SENDING],
        next_attempt_at__lte=now,
    ).update(status=WebhookDelivery.SENDING, next_attempt_at=lease)
    if not claimed:
        return "not_due"
    delivery = WebhookDelivery.objects.select_related("event", "subscription").get(pk=delivery_id)
    sub = delivery.subscription
    if not sub.is_active:
        WebhookDelivery.objects.filter(pk=delivery_id).update(status=WebhookDelivery.FAILED, last_error="subscription disabled")
        return "disabled"
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
    code, error = None, ""
    started = time.monotonic()
    try:
        response = requests.post(sub.url, data=body.encode(), headers=headers, timeout=settings.WEBHOOK_TIMEOUT,
                                 allow_redirects=False)
        code = response.status_code
        ok = 200 <= code < 300
        if not ok:
            error = f"HTTP {code}"
    except requests.RequestException as exc:
        ok, error = False, type(exc).__name__
    duration = (time.monotonic() - started) * 1000
    done = timezone.now()
    with transaction.atomic():
        DeliveryAttempt.objects.create(delivery_id=delivery_id, response_code=code, error=error[:500], duration_ms=duration)
        attempts = delivery.attempts + 1
        if ok:
            WebhookDelivery.objects.filter(pk=delivery_id).update(
                status=WebhookDelivery.SUCCEEDED, attempts=attempts, last_response_code=code, last_error="", delivered_at=done
            )
            WebhookSubscription.objects.filter(pk=sub.pk, failing_since__isnull=False).update(failing_since=None)
            WEBHOOK_DELIVERIES.labels("success").inc()
            return "succeeded"
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
            return "disabled"
        if attempts > len(schedule):
            WebhookDelivery.objects.filter(pk=delivery_id).update(
                status=WebhookDelivery.FAILED, attempts=attempts, last_response_code=code, last_error=error[:500]
            )
            return "failed"
        delay = schedule[attempts - 1]
        WebhookDelivery.objects.filter(pk=delivery_id).update(
            status=WebhookDelivery.RETRYING, attempts=attempts, last_response_code=code, last_error=error[:500],
            next_attempt_at=done + timedelta(seconds=delay),
        )
        if delay <= 60:
            from .tasks import delivery_attempt_task

            def later() -> None:
                try:
                    delivery_attempt_task.apply_async(args=(delivery_id,), countdown=delay, retry=False)
                except Exception:  # noqa: BLE001
                    pass

            transaction.on_commit(later)
    return "retrying"


def delivery_resend(*, delivery_id: int, actor: str) -> None:
    """An operator's "send again": a fresh attempt now, whatever the state."""
    WebhookDelivery.objects.filter(pk=delivery_id).update(status=WebhookDelivery.PENDING, next_attempt_at=timezone.now())
    transaction.on_commit(lambda: _queue_delivery(delivery_id))


def outbox_sweep(*, older_than: float = 2.0, limit: int = 1000) -> dict[str, int]:
    """Send what the after-commit path could not: undispatched events, due deliveries."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=older_than)
    event_ids = list(
        Event.objects.filter(dispatched_at__isnull=True, created_at__lte=cutoff).order_by("id").values_list("pk", flat=True)[:limit]
    )
    for event_id in event_ids:
        event_dispatch(event_id=event_id)
    due = list(
        WebhookDelivery.objects.filter(
            status__in=[WebhookDelivery.PENDING, WebhookDelivery.RETRYING, WebhookDelivery.SENDING], next_attempt_at__lte=now
        ).filter(next_attempt_at__lte=cutoff).values_list("pk", flat=True)[:limit]
    )
    for delivery_id in due:
        _queue_delivery(delivery_id)
    return {"events": len(event_ids), "deliveries": len(due)}
