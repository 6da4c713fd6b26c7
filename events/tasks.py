"""The Celery floor of events: the tasks, and every function that queues one.

Tasks are thin, take ids and are idempotent (claims and unique constraints make a
rerun harmless). The work is in ``dispatch.py``, which queues nothing: it returns
what should run next and the functions here queue it. The task names are what
queued messages and the beat schedule carry: keep them.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .dispatch import delivery_attempt, event_dispatch
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


@shared_task(name="events.deliver")
def delivery_attempt_task(delivery_id: int) -> str:
    attempt = delivery_attempt(delivery_id=delivery_id)
    if attempt.outcome == "busy":
        # The tenant is at its cap: wait in the queue, not in a worker slot.
        delivery_queue(delivery_id, countdown=attempt.retry_in)
    elif attempt.outcome == "retrying" and attempt.retry_in <= _COUNTDOWN_MAX:
        transaction.on_commit(lambda: delivery_queue(delivery_id, countdown=attempt.retry_in))
    return attempt.outcome


@shared_task(name="events.outbox_sweep")
def outbox_sweep_task() -> dict:
    return outbox_sweep()


# --- queueing ---------------------------------------------------------------------------


def event_dispatch_queue(event_id: int) -> None:
    """After-commit hook: queue the fan-out of a committed event. Broker down: left
    for the outbox sweep."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        event_dispatch_task.apply(args=(event_id,))
        return
    try:
        event_dispatch_task.apply_async(args=(event_id,), retry=False)
    except Exception:  # noqa: BLE001 - broker down: the outbox sweep sends it later
        logger.warning("event %s: broker unavailable, left for the outbox sweep", event_id)


def delivery_queue(delivery_id: int, *, countdown: float | None = None) -> None:
    """Queue one delivery's attempt. Broker down: left for the outbox sweep."""
    try:
        delivery_attempt_task.apply_async(args=(delivery_id,), countdown=countdown, retry=False)
    except Exception:  # noqa: BLE001
        logger.warning("delivery %s: broker unavailable, left for the outbox sweep", delivery_id)


def _dispatch(event_id: int) -> int:
    """Fan one event out and queue its deliveries after commit. Returns how many were created."""
    fanout = event_dispatch(event_id=event_id)
    if fanout.to_send:
        transaction.on_commit(lambda: [delivery_queue(i) for i in fanout.to_send])
    return fanout.created


def delivery_resend(*, delivery_id: int, actor: str) -> None:
    """An operator's "send again": a fresh attempt now, whatever the state."""
    WebhookDelivery.objects.filter(pk=delivery_id).update(status=WebhookDelivery.PENDING, next_attempt_at=timezone.now())
    transaction.on_commit(lambda: delivery_queue(delivery_id))


def outbox_sweep(*, older_than: float = 2.0, limit: int = 1000) -> dict[str, int]:
    """Send what the after-commit path could not: undispatched events, due deliveries."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=older_than)
    event_ids = events_undispatched(before=cutoff, limit=limit)
    for event_id in event_ids:
        _dispatch(event_id)
    due = deliveries_due(now=now, before=cutoff, limit=limit)
    for delivery_id in due:
        delivery_queue(delivery_id)
    return {"events": len(event_ids), "deliveries": len(due)}
