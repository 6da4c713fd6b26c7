"""Waiting for something a real worker or process does, without sleeping blindly."""
from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


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


@contextmanager
def serving(args: list[str], *, base: str, cwd: Path, env: dict[str, str], log_path: Path,
            timeout: float = 60) -> Iterator[subprocess.Popen]:
    """A server process of this checkout (gunicorn, uvicorn): started, waited for until
    ``{base}/health`` answers 200, stopped afterwards (killed if it does not stop)."""
    log = open(log_path, "ab")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)

    def up() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as answer:
                return answer.status == 200
        except (OSError, urllib.error.URLError):
            return False

    try:
        assert wait_until(up, timeout=timeout), log_path.read_text()[-3000:]
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
