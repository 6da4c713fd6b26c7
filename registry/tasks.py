"""Registry beat tasks: thin, idempotent, safe to run twice (the sweep takes a lock)."""
from celery import shared_task


@shared_task(name="registry.sweep")
def registry_sweep_task() -> dict:
    from .services import instance_sweep

    return instance_sweep()


@shared_task(name="registry.active_checks")
def registry_active_checks_task() -> dict:
    from .services import instance_active_checks

    return instance_active_checks()


@shared_task(name="registry.heartbeat_flush")
def registry_heartbeat_flush_task() -> dict:
    from .services import heartbeat_flush

    return heartbeat_flush()
