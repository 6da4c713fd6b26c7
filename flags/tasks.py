"""Flag tasks: thin wrappers over services, safe to retry."""
from celery import shared_task


@shared_task(name="flags.usage_flush")
def flag_usage_flush_task() -> int:
    """Move evaluation counters from Redis into FlagEnvironment (beat, every minute)."""
    from .usage import usage_flush

    return usage_flush()
