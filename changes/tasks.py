"""Change request tasks: thin wrappers over the services, safe to retry."""
from celery import shared_task

from .services.change_requests import change_requests_apply_due


@shared_task(name="changes.apply_due")
def change_requests_apply_due_task() -> int:
    """Apply the scheduled change requests that are due (beat; each applied once)."""
    return change_requests_apply_due()
