"""The long-poll watch (``GET /api/v1/events/?wait=``): limits on held waits, and the wake-up.

Served under ASGI (the Procfile's ``web``, ``make run``) a held wait is a listener
of the stream's hub (``events.stream.wait_for_events``): a coroutine, no thread;
the process bounds them with the stream's listeners (``EVENTS_STREAM_MAX_PER_PROCESS``).
Served by a WSGI server (runserver, gthread, the test client's live server) each
held wait occupies a server thread for up to ``EVENTS_MAX_WAIT`` seconds, so such
a process holds at most ``EVENTS_WAIT_MAX_PER_PROCESS`` of them (503 beyond): the
other threads stay free for ordinary reads. Either way one caller (API key,
user, service) holds at most ``EVENTS_WAIT_MAX_PER_KEY`` (429 beyond), both
answers with ``Retry-After``. The rest of this module is the thread-holding wait.

A waiter wakes as soon as an event commits:
- with Redis, on the pub/sub message of :func:`watchers_wake` (an after-commit hook, ``events.apps``)
  (subscribed before the first look at the database, so none is missed);
- without Redis (the embedded default) or while it is down, on a condition that
  the same hook notifies in this process, and by looking at the database every
  ``EVENTS_POLL_INTERVAL`` seconds for events of other processes (worker, beat).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django_redis import get_redis_connection

logger = logging.getLogger(__name__)

CHANNEL = "confighub:events"


class WaitRefused(Exception):
    status = 503
    code = "wait_capacity"
    retry_after = 5

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class TooManyWaits(WaitRefused):
    status = 429
    code = "too_many_waits"


_lock = threading.Lock()
_held: dict[str, int] = {}
_state = {"total": 0}
_threads_held = [0]  # of which held a thread


@contextmanager
def held_wait(caller: str, *, thread_held: bool = True) -> Iterator[None]:
    """Count one held wait of ``caller`` for the body; refuse beyond the limits.
    ``thread_held=False``: a wait of the stream's hub (served under ASGI, no thread
    held), bounded per process by the hub's listener cap instead (events.stream)."""
    with _lock:
        per_key = settings.EVENTS_WAIT_MAX_PER_KEY
        if _held.get(caller, 0) >= per_key:
            raise TooManyWaits(f"this caller already holds {per_key} waits (EVENTS_WAIT_MAX_PER_KEY); "
                               "use one watch, or poll without wait")
        if thread_held and _threads_held[0] >= settings.EVENTS_WAIT_MAX_PER_PROCESS:
            raise WaitRefused("this server holds as many waits as it allows (EVENTS_WAIT_MAX_PER_PROCESS); "
                              "try again shortly")
        _held[caller] = _held.get(caller, 0) + 1
        _state["total"] += 1
        _threads_held[0] += thread_held
    try:
        yield
    finally:
        with _lock:
            _state["total"] -= 1
            _threads_held[0] -= thread_held
            if _held[caller] <= 1:
                del _held[caller]
            else:
                _held[caller] -= 1


# --- wake-up in this process ---------------------------------------------------------

_changed = threading.Condition()
_generation = [0]
# Callables run on every commit in this process (the stream's hub: events.stream).
_on_commit: list = []


def on_commit_notify(callback) -> None:
    """Run ``callback()`` (from the committing thread, so it must be thread-safe
    and quick) each time an event commits in this process."""
    _on_commit.append(callback)


def notify_committed() -> None:
    """An event committed in this process: wake its waiters (called after commit)."""
    with _changed:
        _generation[0] += 1
        _changed.notify_all()
    for callback in list(_on_commit):
        try:
            callback()
        except Exception:  # noqa: BLE001 - a closed loop: that hub is gone
            logger.debug("watch: a commit callback failed", exc_info=True)


class Waiter:
    """One waiting request: ``mark()`` before each look at the database, then ``wait(mark, seconds)``."""

    def __init__(self) -> None:
        self.pubsub = None

    def __enter__(self) -> Waiter:
        if settings.REDIS_URL:
            try:
                pubsub = get_redis_connection("default").pubsub()
                pubsub.subscribe(CHANNEL)
                # Subscribed for sure before the first query: a change committed
                # from here on is a message, never lost between query and wait.
                message = pubsub.get_message(timeout=1.0)
                if message is None or message["type"] != "subscribe":
                    raise ConnectionError("no subscription confirmation")
                self.pubsub = pubsub
            except Exception:  # noqa: BLE001 - Redis down: the local wake-up and the poll
                self._close()
                logger.info("watch: Redis pub/sub unavailable, polling the database")
        return self

    def __exit__(self, *exc) -> None:
        self._close()

    def _close(self) -> None:
        if self.pubsub is not None:
            try:
                self.pubsub.close()
            except Exception:  # noqa: BLE001
                pass
        self.pubsub = None

    @staticmethod
    def mark() -> int:
        return _generation[0]

    def wait(self, mark: int, timeout: float) -> None:
        """Return when an event may have committed since ``mark``, or after ``timeout``."""
        if timeout <= 0:
            return
        if self.pubsub is not None:
            try:
                deadline = time.monotonic() + timeout
                while (left := deadline - time.monotonic()) > 0:
                    message = self.pubsub.get_message(timeout=min(left, 1.0))
                    if message is not None and message["type"] == "message":
                        return
                return
            except Exception:  # noqa: BLE001 - Redis went away mid-wait
                self._close()
                return
        with _changed:
            _changed.wait_for(lambda: _generation[0] != mark, timeout=min(timeout, settings.EVENTS_POLL_INTERVAL))


def watchers_wake(event_id: int) -> None:
    """After-commit hook: wake this process's waiters, and publish the event's id on
    CHANNEL for every other process's. Redis down or not configured: the others
    find the event by looking at the database (``EVENTS_POLL_INTERVAL``)."""
    notify_committed()
    if not settings.REDIS_URL:
        return
    try:
        get_redis_connection("default").publish(CHANNEL, str(event_id))
    except Exception:  # noqa: BLE001 - Redis down: watchers fall back to polling
        logger.info("event %s: redis publish failed", event_id)
