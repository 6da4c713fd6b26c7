"""Registry beat tasks: thin, idempotent, safe to run twice (the sweep takes a lock).

The task names are what the beat schedule and queued messages carry: keep them."""
from celery import shared_task

from .checks import instance_active_checks
from .heartbeats import heartbeat_flush
from .sweep import instance_sweep


@shared_task(name="registry.sweep")
def registry_sweep_task() -> dict:
    return instance_sweep()


@shared_task(name="registry.active_checks")
def registry_active_checks_task() -> dict:
    return instance_active_checks()


@shared_task(name="registry.heartbeat_flush")
def registry_heartbeat_flush_task() -> dict:
    return heartbeat_flush()
