"""Evaluation counters without a database write per request.

With Redis, each evaluation is one ``HINCRBY`` on a hash; the beat task
``flag_usage_flush_task`` swaps the hash out atomically (RENAME) and adds the
counts to ``FlagEnvironment`` in one UPDATE per flag and environment. Without
Redis (the embedded development mode) counts are kept in the process and written
at most every few seconds by the process that counted them.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from django.conf import settings
from django.db.models import F
from django.utils import timezone
from django_redis import get_redis_connection

from core.metrics import FLAG_EVALUATIONS

from .models import FlagEnvironment

logger = logging.getLogger(__name__)

HASH = "flags:usage"
_local: Counter = Counter()
_local_lock = threading.Lock()
_last_local_flush = time.monotonic()
_LOCAL_FLUSH_EVERY = 10.0


def _redis():
    if not settings.REDIS_URL:
        return None

    return get_redis_connection("default")


_pending: Counter = Counter()
_pending_lock = threading.Lock()
_last_push = time.monotonic()
PUSH_EVERY = 1.0


def usage_push() -> None:
    """Send this process's counts to Redis in one pipeline (at most once a second)."""
    global _last_push
    with _pending_lock:
        counts = dict(_pending)
        _pending.clear()
        _last_push = time.monotonic()
    if not counts:
        return
    try:
        client = _redis()
        pipe = client.pipeline(transaction=False)
        for field, n in counts.items():
            pipe.hincrby(HASH, field, n)
        pipe.execute()
    except Exception:  # noqa: BLE001 - Redis down: usage is best effort
        pass


class _Pusher:
    """One daemon thread per process that sends the counts to Redis when a push is
    due: the request that finds it due does not wait for the round trip."""

    def __init__(self) -> None:
        self._due = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def wake(self) -> None:
        global _last_push
        with self._lock:
            _last_push = time.monotonic()  # one wake-up per period, whoever finds it due
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="flag-usage-push", daemon=True)
                self._thread.start()
        self._due.set()

    def _run(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            usage_push()


_pusher = _Pusher()


def usage_record(*, tenant_id: int, environment: str, names: tuple[str, ...]) -> None:
    """Count one evaluation of each flag in ``names``; never fails the request.

    Counts gather in the process and go to Redis at most once a second, from a
    thread of their own, so an evaluation costs no network round trip.
    """
    usage_add(tenant_id=tenant_id, environment=environment, counts=dict.fromkeys(names, 1))


def usage_add(*, tenant_id: int, environment: str, counts: dict[str, int]) -> None:
    """Count ``counts[name]`` evaluations of each flag (:func:`usage_record`, and the
    evaluations an Unleash SDK reports in its metrics)."""

    FLAG_EVALUATIONS.inc(sum(counts.values()))
    if settings.REDIS_URL:
        with _pending_lock:
            for name, n in counts.items():
                _pending[f"{tenant_id}|{environment}|{name}"] += n
            due = time.monotonic() - _last_push >= PUSH_EVERY
        if due:
            _pusher.wake()
        return
    global _last_local_flush
    with _local_lock:
        for name, n in counts.items():
            _local[(tenant_id, environment, name)] += n
        due = time.monotonic() - _last_local_flush > _LOCAL_FLUSH_EVERY
        if due:
            _last_local_flush = time.monotonic()
    if due:
        usage_flush()


def _apply(counts: dict[tuple[int, str, str], int]) -> int:

    now = timezone.now()
    for (tenant_id, environment, name), n in counts.items():
        FlagEnvironment.objects.filter(
            flag__tenant_id=tenant_id, flag__name=name, environment__slug=environment
        ).update(evaluation_count=F("evaluation_count") + n, last_evaluated_at=now)
    return len(counts)


def usage_flush() -> int:
    """Move counted evaluations into the database. Returns the number of flag states updated."""
    counts: dict[tuple[int, str, str], int] = {}
    client = None
    try:
        client = _redis()
    except Exception:  # noqa: BLE001
        client = None
    if client is not None:
        usage_push()
        tmp = f"{HASH}:flushing:{time.time_ns()}"
        try:
            client.rename(HASH, tmp)
        except Exception:  # noqa: BLE001 - no such key: nothing counted
            return 0
        raw = client.hgetall(tmp)
        client.delete(tmp)
        for field, value in raw.items():
            tenant_id, environment, name = field.decode().split("|", 2)
            counts[(int(tenant_id), environment, name)] = int(value)
    else:
        with _local_lock:
            counts = dict(_local)
            _local.clear()
    return _apply(counts) if counts else 0
