"""The Celery floor of events: the tasks, and every function that queues one.

Tasks are thin, take ids and are idempotent (claims and unique constraints make a
rerun harmless). The work is in ``dispatch.py``, which queues nothing: it returns
what should run next and the functions here queue it. The task names are what
queued messages and the beat schedule carry: keep them.
"""
from __future__ import annotations

import logging
from collections import Counter, defaultdict
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .dispatch import deliveries_attempt, event_dispatch
from .models import WebhookDelivery
from .selectors import deliveries_due, events_undispatched

logger = logging.getLogger(__name__)

# A retry due within this many seconds is queued with a countdown; a later one is
# left to the outbox sweep (a broker is no place for hours-long countdowns).
_COUNTDOWN_MAX = 60


# --- the tasks --------------------------------------------------------------------------


@shared_task(name="events.dispatch")
def event_dispatch_task(event_id: int) -> int:
    return _dispatch(event_id)


@shared_task(name="events.dispatch_batch")
def events_dispatch_task(event_ids: list[int]) -> int:
    return sum(_dispatch(event_id) for event_id in event_ids)


@shared_task(name="events.deliver_batch")
def deliveries_attempt_task(delivery_ids: list[int]) -> dict[str, int]:
    return _attempt(delivery_ids)


@shared_task(name="events.deliver")
def delivery_attempt_task(delivery_id: int) -> dict[str, int]:
    # One delivery: messages queued before batches existed.
    return _attempt([delivery_id])


@shared_task(name="events.outbox_sweep")
def outbox_sweep_task() -> dict:
    return outbox_sweep()


# --- queueing ---------------------------------------------------------------------------


def event_dispatch_queue(event_id: int) -> None:
    """After-commit hook: queue the fan-out of a committed event."""
    events_dispatch_queue([event_id])


def events_dispatch_queue(event_ids: list[int]) -> None:
    """After-commit hook: queue the fan-out of committed events, one task for all of
    them (a sweep's hundred). Broker down: left for the outbox sweep."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        events_dispatch_task.apply(args=(list(event_ids),))
        return
    try:
        events_dispatch_task.apply_async(args=(list(event_ids),), retry=False)
    except Exception:  # noqa: BLE001 - broker down: the outbox sweep sends them later
        logger.warning("%d events: broker unavailable, left for the outbox sweep", len(event_ids))


def deliveries_queue(delivery_ids: list[int], *, countdown: float | None = None) -> None:
    """Queue deliveries' attempts, in batches of WEBHOOK_BATCH_SIZE. Broker down: left
    for the outbox sweep."""
    size = max(1, settings.WEBHOOK_BATCH_SIZE)
    for start in range(0, len(delivery_ids), size):
        batch = list(delivery_ids[start : start + size])
        try:
            deliveries_attempt_task.apply_async(args=(batch,), countdown=countdown, retry=False)
        except Exception:  # noqa: BLE001
            logger.warning("%d deliveries: broker unavailable, left for the outbox sweep", len(batch))


def _attempt(delivery_ids: list[int]) -> dict[str, int]:
    """Send a batch, and queue again what is to be retried soon: a tenant at its cap
    waits in the queue, not in a worker slot; a retry due within a minute gets a
    countdown (later ones are the outbox sweep's). Returns how many of each outcome."""
    attempts = deliveries_attempt(delivery_ids=delivery_ids)
    later: dict[float, list[int]] = defaultdict(list)
    for delivery_id, attempt in attempts.items():
        if attempt.outcome == "busy" or (attempt.outcome == "retrying" and attempt.retry_in <= _COUNTDOWN_MAX):
            later[attempt.retry_in].append(delivery_id)
    for delay, ids in sorted(later.items()):
        deliveries_queue(ids, countdown=delay)
    return dict(Counter(a.outcome for a in attempts.values()))


def _dispatch(event_id: int) -> int:
    """Fan one event out and queue its deliveries after commit. Returns how many were created."""
    fanout = event_dispatch(event_id=event_id)
    if fanout.to_send:
        transaction.on_commit(lambda: deliveries_queue(fanout.to_send))
    return fanout.created


def delivery_resend(*, delivery_id: int, actor: str) -> None:
    """An operator's "send again": a fresh attempt now, whatever the state."""
    WebhookDelivery.objects.filter(pk=delivery_id).update(status=WebhookDelivery.PENDING, next_attempt_at=timezone.now())
    transaction.on_commit(lambda: deliveries_queue([delivery_id]))


def outbox_sweep(*, older_than: float = 2.0, limit: int = 1000) -> dict[str, int]:
    """Send what the after-commit path could not: undispatched events, due deliveries."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=older_than)
    event_ids = events_undispatched(before=cutoff, limit=limit)
    for event_id in event_ids:
        _dispatch(event_id)
    due = deliveries_due(now=now, before=cutoff, limit=limit)
    deliveries_queue(due)
    return {"events": len(event_ids), "deliveries": len(due)}
