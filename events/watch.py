"""The watchers' wake-up: after commit, each event's id is published on a Redis
channel that held ``GET /api/v1/events/?wait=`` requests subscribe to."""
from __future__ import annotations

import logging

from django.conf import settings
from django_redis import get_redis_connection

logger = logging.getLogger(__name__)

CHANNEL = "confighub:events"


def watchers_wake(event_id: int) -> None:
    """After-commit hook: tell held watch requests an event is there. Redis down or
    not configured: nothing to do, watchers fall back to polling."""
    if not settings.REDIS_URL:
        return
    try:
        get_redis_connection("default").publish(CHANNEL, str(event_id))
    except Exception:  # noqa: BLE001 - Redis down: watchers fall back to polling
        logger.info("event %s: redis publish failed", event_id)
