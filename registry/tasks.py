"""Registry beat tasks: thin, idempotent, safe to run twice (the sweep takes a lock)."""
from celery import shared_task


@shared_task(name="registry.sweep")
def registry_sweep_task() -> dict:
    from .services import instance_sweep

    return instance_sweep()
