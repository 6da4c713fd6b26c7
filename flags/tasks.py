"""Flag tasks: thin wrappers over services, safe to retry."""
from celery import shared_task

from .usage import usage_flush


@shared_task(name="flags.usage_flush")
def flag_usage_flush_task() -> int:
    """Move evaluation counters from Redis into FlagEnvironment (beat, every minute)."""

    return usage_flush()
