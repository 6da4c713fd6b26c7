"""The Celery app. Every beat entry of the hub is declared here, in one place."""
from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config_hub.settings.base")

app = Celery("config_hub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _beat_schedule() -> dict:
    from django.conf import settings

    schedule: dict = {
        "flags-usage-flush": {"task": "flags.usage_flush", "schedule": 60.0},
        "registry-sweep": {"task": "registry.sweep", "schedule": float(settings.REGISTRY_SWEEP_INTERVAL)},
        "events-outbox-sweep": {"task": "events.outbox_sweep", "schedule": 5.0},
        "beat-heartbeat": {"task": "config_hub.beat_heartbeat", "schedule": 10.0},
        # Scheduled change requests that are due; each is applied once (a row lock
        # skipped by every other worker, then its status), so overlapping beats are harmless.
        "changes-apply-due": {"task": "changes.apply_due", "schedule": float(settings.CHANGE_SCHEDULE_INTERVAL),
                              "options": {"expires": max(30.0, 4 * float(settings.CHANGE_SCHEDULE_INTERVAL))}},
    }
    if settings.REDIS_URL:
        # Buffered heartbeats to the database; a flush not started in time is
        # dropped (the next one writes the same buffer).
        interval = float(settings.REGISTRY_HEARTBEAT_FLUSH_INTERVAL)
        schedule["registry-heartbeat-flush"] = {"task": "registry.heartbeat_flush", "schedule": interval,
                                                "options": {"expires": max(10.0, 5 * interval)}}
    if settings.REGISTRY_ACTIVE_CHECKS:
        schedule["registry-active-checks"] = {"task": "registry.active_checks",
                                              "schedule": float(settings.REGISTRY_CHECK_INTERVAL)}
    # Other apps add their entries here (registry sweep, outbox sweep, flag
    # usage flush); keep them in this one function so an operator sees them all.
    return schedule


@app.on_after_finalize.connect
def _setup_beat(sender: Celery, **_: object) -> None:
    sender.conf.beat_schedule = _beat_schedule()
