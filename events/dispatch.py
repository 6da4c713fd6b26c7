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
4. :func:`delivery_attempt` takes one of its tenant's ``WEBHOOK_TENANT_CONCURRENCY``
   delivery slots (a tenant at its cap is re-queued for a moment, so its slow
   receivers never hold every worker), claims the delivery with a conditional
   UPDATE (only one worker wins), POSTs it signed per Standard Webhooks under the
   outbound policy (``core.outbound``: a refused destination is recorded as
   ``blocked``, nothing else), records the attempt, and schedules a retry with
   growing delays; a subscription failing for ``WEBHOOK_DISABLE_AFTER`` seconds is
   disabled.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets as pysecrets
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import DeliveryAttempt, Event, WebhookDelivery, WebhookSubscription

logger = logging.getLogger(__name__)

CHANNEL = "confighub:events"
BLOCKED_ERROR = "blocked by the outbound policy"


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


# --- fairness: deliveries in flight per tenant ------------------------------------------

# A sorted set per tenant: member = one delivery in flight, score = when its slot
# expires (a worker killed mid-delivery frees it by then).
_SLOT_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
"""
_local_slots: dict[int, dict[str, float]] = {}
_local_lock = threading.Lock()


def _slot_key(tenant_id: int) -> str:
    return f"ch:webhook-slots:{tenant_id}"


def tenant_slot_take(tenant_id: int, token: str, hold: float) -> bool:
    """Take one of the tenant's delivery slots for at most ``hold`` seconds. Shared by
    every worker through Redis; per process without Redis (the embedded default runs
    one worker). Redis down: the delivery goes ahead (fairness is lost, not events)."""
    cap = settings.WEBHOOK_TENANT_CONCURRENCY
    if cap <= 0 or settings.CELERY_TASK_ALWAYS_EAGER:  # eager: one delivery at a time, in the caller
        return True
    now = time.time()
    if settings.REDIS_URL:
        try:
            return bool(_redis().eval(_SLOT_TAKE, 1, _slot_key(tenant_id), now, now + hold, cap, token, int(hold * 1000) + 1000))
        except Exception:  # noqa: BLE001
            logger.warning("webhook slots: redis unavailable, delivering without the per-tenant cap")
            return True
    with _local_lock:
        held = {t: exp for t, exp in _local_slots.get(tenant_id, {}).items() if exp > now}
        if len(held) >= cap:
            _local_slots[tenant_id] = held
            return False
        held[token] = now + hold
        _local_slots[tenant_id] = held
        return True


def tenant_slot_release(tenant_id: int, token: str) -> None:
    if settings.REDIS_URL:
        try:
            _redis().zrem(_slot_key(tenant_id), token)
        except Exception:  # noqa: BLE001 - the slot expires by itself
            pass
        return
    with _local_lock:
        _local_slots.get(tenant_id, {}).pop(token, None)


def delivery_attempt(*, delivery_id: int) -> str:
    """Send one delivery if it is due, its tenant has a free slot and this worker wins
    the claim. Returns the outcome."""
    now = timezone.now()
    due = WebhookDelivery.objects.filter(
        pk=delivery_id, status__in=[WebhookDelivery.PENDING, WebhookDelivery.RETRYING, WebhookDelivery.SENDING],
        next_attempt_at__lte=now,
    )
    tenant_id = due.values_list("subscription__tenant_id", flat=True).first()
    if tenant_id is None:
        return "not_due"
    hold = settings.WEBHOOK_TIMEOUT * 2 + 5
    token = f"{delivery_id}:{pysecrets.token_hex(4)}"
    if not tenant_slot_take(tenant_id, token, hold):
        # The tenant has WEBHOOK_TENANT_CONCURRENCY deliveries in flight: wait in
        # the queue, not in a worker slot. Broker down: the outbox sweep sends it.
        from .tasks import delivery_attempt_task

        try:
            delivery_attempt_task.apply_async(args=(delivery_id,), countdown=settings.WEBHOOK_TENANT_BUSY_DELAY, retry=False)
        except Exception:  # noqa: BLE001
            logger.warning("delivery %s: broker unavailable, left for the outbox sweep", delivery_id)
        return "busy"
    try:
        return _delivery_send(delivery_id=delivery_id, due=due, lease=now + timedelta(seconds=hold))
    finally:
        tenant_slot_release(tenant_id, token)


def _delivery_send(*, delivery_id: int, due, lease) -> str:
    from core import outbound
    from config_hub.metrics import WEBHOOK_DELIVERIES

    claimed = due.update(status=WebhookDelivery.SENDING, next_attempt_at=lease)
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
        return "blocked"
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
