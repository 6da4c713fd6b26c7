"""Event tasks: thin, take ids, idempotent (claims and unique constraints make a rerun harmless)."""
from celery import shared_task


@shared_task(name="events.dispatch")
def event_dispatch_task(event_id: int) -> int:
    from .dispatch import event_dispatch

    return event_dispatch(event_id=event_id)


@shared_task(name="events.deliver")
def delivery_attempt_task(delivery_id: int) -> str:
    from .dispatch import delivery_attempt

    return delivery_attempt(delivery_id=delivery_id)


@shared_task(name="events.outbox_sweep")
def outbox_sweep_task() -> dict:
    from .dispatch import outbox_sweep

    return outbox_sweep()
