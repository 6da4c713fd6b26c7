"""Waiting for something a real worker or process does, without sleeping blindly."""
from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, step: float = 0.2) -> bool:
    """True as soon as ``predicate()`` is truthy; False if ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def worker_idle(app=None) -> bool:
    """True when the broker queue is empty and the worker holds no task: none running,
    prefetched or waiting for its ETA (a retry). False if no worker answers."""
    if app is None:
        from config_hub.celery import app
    with app.connection_for_write() as conn:
        queued = conn.default_channel.client.llen(app.conf.task_default_queue)
    inspect = app.control.inspect(timeout=1.0, limit=1)
    held = [inspect.active(), inspect.reserved(), inspect.scheduled()]
    if queued or any(replies is None for replies in held):
        return False
    return not any(tasks for replies in held for tasks in replies.values())


def wait_until_worker_idle(timeout: float = 20.0) -> bool:
    """Wait for :func:`worker_idle` twice in a row: whatever the worker was going to
    send has been sent (instead of sleeping for "long enough")."""
    seen = [False]

    def settled() -> bool:
        idle = worker_idle()
        twice, seen[0] = idle and seen[0], idle
        return twice

    return wait_until(settled, timeout=timeout, step=0.1)
