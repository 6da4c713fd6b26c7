"""Hub-level beat tasks."""
import time

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

BEAT_KEY = "confighub:beat:last"


def _beat_file():
    # Without Redis the cache is each process's own memory: the worker's record
    # would never reach the web process, so the embedded setup shares a file.
    return settings.VAR_DIR / "beat-last-run"


@shared_task(name="config_hub.beat_heartbeat")
def beat_heartbeat_task() -> float:
    """Record that the beat (and a worker) ran; /health reports the age."""
    now = time.time()
    if settings.REDIS_URL:
        cache.set(BEAT_KEY, now, None)
    else:
        _beat_file().write_text(repr(now))
    return now


def beat_last_run() -> float | None:
    """When the beat last ran (epoch seconds), or None if never (or unknown)."""
    if settings.REDIS_URL:
        last = cache.get(BEAT_KEY)
        return None if last is None else float(last)
    try:
        return float(_beat_file().read_text())
    except (OSError, ValueError):
        return None
