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

import asyncio
import json
import logging
import secrets as pysecrets
import time
from collections import Counter, defaultdict, deque
from datetime import timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Value, When
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
        # The filter is all that is needed here: the secrets (decrypted on load)
        # wait for the sending.
        subs = [s for s in candidates.defer("secret") if s.pk not in existing and s.matches(event)]
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


# --- a batch of deliveries -----------------------------------------------------------------


class _Message(NamedTuple):
    delivery_id: int
    tenant_id: int
    url: str
    headers: dict[str, str]
    body: bytes


def _hold() -> float:
    """How long a batch may hold its claims and its tenants' slots: it starts
    deliveries for at most two timeouts (its window), each lasts at most one, and a
    margin (a worker killed mid-batch frees them by then)."""
    return settings.WEBHOOK_TIMEOUT * 3 + 5


def delivery_attempt(*, delivery_id: int) -> Attempt:
    """Send one delivery if it is due, its tenant has a free slot and this worker wins
    the claim (a batch of one). Returns the outcome, and when to try again."""
    return deliveries_attempt(delivery_ids=[delivery_id]).get(delivery_id, Attempt("not_due"))


def deliveries_attempt(*, delivery_ids: list[int]) -> dict[int, Attempt]:
    """Send a batch of deliveries (see the module's docstring, step 4). Returns the
    outcome of each delivery this worker claimed; one not due, or claimed by another
    worker, is left out."""
    now = timezone.now()
    deliveries = _claim(delivery_ids, now=now, lease=now + timedelta(seconds=_hold()))
    outcomes: dict[int, Attempt] = {}
    inactive = [d.pk for d in deliveries if not d.subscription.is_active]
    if inactive:
        WebhookDelivery.objects.filter(pk__in=inactive).update(status=WebhookDelivery.FAILED, last_error="subscription disabled")
        outcomes.update(dict.fromkeys(inactive, Attempt("disabled")))
    active = [d for d in deliveries if d.subscription.is_active]
    if active:
        results = outbound.run(_send_all(_messages(active)))
        outcomes.update(_record(active, results, claimed_at=now))
    return outcomes


def _claim(delivery_ids: list[int], *, now, lease) -> list[WebhookDelivery]:
    """Claim the due deliveries among ``delivery_ids`` (rows another worker holds are
    skipped), with their event and subscription."""
    with transaction.atomic():
        due = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("event", "subscription")
            .filter(pk__in=delivery_ids, next_attempt_at__lte=now,
                    status__in=[WebhookDelivery.PENDING, WebhookDelivery.RETRYING, WebhookDelivery.SENDING])
        )
        if due:
            WebhookDelivery.objects.filter(pk__in=[d.pk for d in due]).update(status=WebhookDelivery.SENDING, next_attempt_at=lease)
    return due


def _messages(deliveries: list[WebhookDelivery]) -> list[_Message]:
    """Each delivery's signed request: the event's body (built once per event), and
    ``webhook-id`` = the event's id, the same on every retry and for every subscriber."""
    bodies: dict[int, str] = {}
    out = []
    for delivery in deliveries:
        body = bodies.get(delivery.event_id)
        if body is None:
            body = bodies[delivery.event_id] = json.dumps(event_payload(delivery.event), separators=(",", ":"), sort_keys=True)
        sub = delivery.subscription
        msg_id = str(delivery.event_id)
        ts = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": sign(sub.secret, msg_id, ts, body),
            "user-agent": "config-hub-webhooks/1",
        }
        out.append(_Message(delivery.pk, sub.tenant_id, sub.url, headers, body.encode()))
    return out


async def _send_all(messages: list[_Message]) -> dict[int, tuple[outbound.Outcome, float]]:
    """POST every message from one event loop: per tenant, lanes that each hold one of
    the tenant's slots and send its messages one after another. Returns (outcome,
    duration in ms) per delivery sent; one left out was not started."""
    loop = asyncio.get_running_loop()
    window_end = loop.time() + settings.WEBHOOK_TIMEOUT * 2
    hold = _hold()
    cap = settings.WEBHOOK_TENANT_CONCURRENCY
    queues: dict[int, deque[_Message]] = defaultdict(deque)
    for message in messages:
        queues[message.tenant_id].append(message)
    results: dict[int, tuple[outbound.Outcome, float]] = {}

    async def lane(tenant_id: int, queue: deque[_Message]) -> None:
        token = f"{tenant_id}:{pysecrets.token_hex(6)}"
        if not tenant_slot_take(tenant_id, token, hold):
            return  # the tenant is at its cap (other batches, other workers)
        try:
            while queue and loop.time() < window_end:
                message = queue.popleft()
                started = time.monotonic()
                outcome = await sender.send("POST", message.url, headers=message.headers, body=message.body)
                results[message.delivery_id] = (outcome, (time.monotonic() - started) * 1000)
        finally:
            tenant_slot_release(tenant_id, token)

    async with outbound.Sender(connect_timeout=settings.WEBHOOK_CONNECT_TIMEOUT, total_timeout=settings.WEBHOOK_TIMEOUT,
                               concurrency=settings.WEBHOOK_CONCURRENCY) as sender:
        await asyncio.gather(*(lane(tenant_id, queue) for tenant_id, queue in queues.items()
                               for _ in range(min(cap, len(queue)) if cap > 0 else len(queue))))
    return results


def _record(deliveries: list[WebhookDelivery], results: dict[int, tuple[outbound.Outcome, float]], *,
            claimed_at) -> dict[int, Attempt]:
    """Record a batch's attempts in one transaction, set-based: one ``DeliveryAttempt``
    per attempt, each delivery's new state (grouped: one UPDATE per distinct state),
    the subscriptions' failing/disabled state. Deliveries not started are released
    (due again now) and reported ``busy``."""
    done = timezone.now()
    schedule = _retry_schedule()
    outcomes: dict[int, Attempt] = {}
    log: list[DeliveryAttempt] = []
    states: dict[tuple, list[int]] = defaultdict(list)  # (status, code, error, next_attempt_at, delivered_at) -> ids
    busy: list[int] = []
    succeeded, failing, disable = set(), set(), set()
    counts: Counter[str] = Counter()
    for delivery in deliveries:
        sub = delivery.subscription
        if delivery.pk not in results:
            busy.append(delivery.pk)
            outcomes[delivery.pk] = Attempt("busy", settings.WEBHOOK_TENANT_BUSY_DELAY)
            continue
        result, duration = results[delivery.pk]
        if result.blocked:
            # Refused by the outbound policy: nothing was sent, and the log says only
            # that (no status, no error class, no duration). Not retried: "send again"
            # after fixing the URL or OUTBOUND_ALLOW.
            log.append(DeliveryAttempt(delivery_id=delivery.pk, response_code=None, error=BLOCKED_ERROR, duration_ms=0))
            states[(WebhookDelivery.BLOCKED, None, BLOCKED_ERROR, None, None)].append(delivery.pk)
            counts["blocked"] += 1
            outcomes[delivery.pk] = Attempt("blocked")
            logger.warning("delivery %s: %s refused by the outbound policy", delivery.pk, sub.url)
            continue
        code, error = result.status, result.error[:500]
        log.append(DeliveryAttempt(delivery_id=delivery.pk, response_code=code, error=error, duration_ms=duration))
        if result.ok:
            states[(WebhookDelivery.SUCCEEDED, code, "", None, done)].append(delivery.pk)
            succeeded.add(sub.pk)
            counts["success"] += 1
            outcomes[delivery.pk] = Attempt("succeeded")
            continue
        counts["failure"] += 1
        failing.add(sub.pk)
        failing_since = sub.failing_since or done
        attempts = delivery.attempts + 1
        if (done - failing_since).total_seconds() >= settings.WEBHOOK_DISABLE_AFTER:
            disable.add(sub.pk)
            states[(WebhookDelivery.FAILED, code, error, None, None)].append(delivery.pk)
            outcomes[delivery.pk] = Attempt("disabled")
            logger.warning("webhook subscription %s disabled after failing since %s", sub.pk, failing_since)
        elif attempts > len(schedule):
            states[(WebhookDelivery.FAILED, code, error, None, None)].append(delivery.pk)
            outcomes[delivery.pk] = Attempt("failed")
        else:
            delay = schedule[attempts - 1]
            states[(WebhookDelivery.RETRYING, code, error, done + timedelta(seconds=delay), None)].append(delivery.pk)
            outcomes[delivery.pk] = Attempt("retrying", delay)
    with transaction.atomic():
        DeliveryAttempt.objects.bulk_create(log)
        for (status, code, error, next_attempt_at, delivered_at), ids in states.items():
            fields = {"status": status, "attempts": F("attempts") + 1, "last_response_code": code, "last_error": error}
            if next_attempt_at is not None:
                fields["next_attempt_at"] = next_attempt_at
            if delivered_at is not None:
                fields["delivered_at"] = delivered_at
            WebhookDelivery.objects.filter(pk__in=ids).update(**fields)
        if succeeded:  # a success ends a run of failures (a subscriber answering again)
            WebhookSubscription.objects.filter(pk__in=succeeded, failing_since__isnull=False).update(failing_since=None)
        if failing - succeeded:
            WebhookSubscription.objects.filter(pk__in=failing - succeeded, failing_since__isnull=True).update(failing_since=done)
        if disable:
            WebhookSubscription.objects.filter(pk__in=disable).update(is_active=False, disabled_at=done)
        if busy:  # released: due again now, in the state it had before the claim
            WebhookDelivery.objects.filter(pk__in=busy, status=WebhookDelivery.SENDING).update(
                status=Case(When(attempts=0, then=Value(WebhookDelivery.PENDING)), default=Value(WebhookDelivery.RETRYING)),
                next_attempt_at=claimed_at,
            )
    for outcome, n in counts.items():
        WEBHOOK_DELIVERIES.labels(outcome).inc(n)
    return outcomes
