"""Hub-level beat tasks."""
import time

from celery import shared_task
from django.core.cache import cache

BEAT_KEY = "confighub:beat:last"


@shared_task(name="config_hub.beat_heartbeat")
def beat_heartbeat_task() -> float:
    """Record that the beat (and a worker) ran; /health reports the age."""
    now = time.time()
    cache.set(BEAT_KEY, now, None)
    return now
