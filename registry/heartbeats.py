"""Heartbeats: an instance saying it is alive, and the Redis buffer that keeps them
off PostgreSQL.

A heartbeat that changes nothing but the time is one Redis round trip (the
buffer), or with Redis down or not configured one conditional UPDATE; only a
change of status takes the slow path (a row lock, an event, discovery dropped).
``heartbeat_flush`` writes the buffer to the database, set-based; the sweep and
the active checks flush first and hold flushes off while they write
(``hold_flushes``).
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_redis import get_redis_connection

from core.errors import ValidationFailed
from core.metrics import REGISTRY_HEARTBEATS

from .models import HEALTHY, OUT_OF_SERVICE, UNHEALTHY, Instance, Service
from .selectors import discovery_changed, instance_state, instance_state_forget
from .services import REPORTABLE, instance_status_event

logger = logging.getLogger(__name__)

_TOUCH_SQL = (
    "UPDATE {table} SET last_heartbeat = %(now)s, response_time_ms = COALESCE(%(rt)s, response_time_ms) "
    "WHERE id = %(id)s AND status IN (%(status)s, %(kept)s) "
    "AND (%(tenant)s IS NULL OR service_id IN (SELECT id FROM {services} WHERE tenant_id = %(tenant)s))"
)


def _touch(*, instance_id: int, tenant_id: int | None, now, response_time_ms: float | None, statuses: tuple[str, str]) -> bool:
    """A heartbeat written to the database (no Redis, or Redis down): one UPDATE of
    the time (and response time) where the status stays as it is. True when a row
    was updated.

    On PostgreSQL the commit does not wait for the WAL to reach the disk (``SET
    LOCAL synchronous_commit TO OFF``, this transaction only): a crash can forget
    the last fraction of a second of heartbeats, which the next beat restores.
    Status changes take the slow path, whose commit is durable as usual.
    """
    sql = _TOUCH_SQL.format(table=Instance._meta.db_table, services=Service._meta.db_table)
    params = {"now": now, "rt": response_time_ms, "id": instance_id, "status": statuses[0], "kept": statuses[1],
              "tenant": tenant_id}
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            sql = "SET LOCAL synchronous_commit TO OFF; " + sql
        cursor.execute(sql, params)
        return cursor.rowcount > 0


def _held_down_by_checks(instance: Instance, old: str, wanted: str) -> bool:
    """An instance its active checks marked unhealthy stays so until the checks pass
    again: its own heartbeat saying "healthy" does not overrule them."""
    return (settings.REGISTRY_ACTIVE_CHECKS and bool(instance.health_check_url) and old == UNHEALTHY
            and wanted == HEALTHY and instance.check_failures >= settings.REGISTRY_CHECK_FAILURES)


# --- the heartbeat buffer ---------------------------------------------------------------
#
# A heartbeat that does not change the status is recorded in Redis, not in
# PostgreSQL: ``HSET registry:beats <id> <epoch>`` (and ``registry:beat-rt`` for
# the response time), one round trip. ``heartbeat_flush`` (the beat, every
# REGISTRY_HEARTBEAT_FLUSH_INTERVAL; the sweep and the active checks before they
# judge) writes the whole buffer with one set-based UPDATE per 5,000 rows.

BEATS_KEY = "registry:beats"
BEAT_RT_KEY = "registry:beat-rt"
# Tokens of buffers taken by a flush and not yet deleted after its commit: a flush
# that died between the two leaves its token here and the next one writes it.
FLUSHING_KEY = "registry:beats:flushing"
FLUSH_CHUNK = 5000
_FLUSH_LOCK_ID = 0x5EED_0002
# After a Redis error, heartbeats go straight to the database for this long.
_REDIS_RETRY_AFTER = 5.0
_redis_down_until = [0.0]

# Atomically: move the live buffers aside under a new token (when there is
# anything to move) and return every token still to be written.
_TAKE_SCRIPT = """
local moved = 0
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('RENAME', KEYS[1], KEYS[3]) moved = 1 end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('RENAME', KEYS[2], KEYS[4]) moved = 1 end
if moved == 1 then redis.call('SADD', KEYS[5], ARGV[1]) end
return redis.call('SMEMBERS', KEYS[5])
"""


def _flushing_keys(token: str) -> tuple[str, str]:
    return f"{BEATS_KEY}:flushing:{token}", f"{BEAT_RT_KEY}:flushing:{token}"


def _redis():
    return get_redis_connection("default")


def _buffering() -> bool:
    return (bool(settings.REDIS_URL) and settings.REGISTRY_HEARTBEAT_BUFFER
            and time.monotonic() >= _redis_down_until[0])


def _buffer_beat(*, instance_id: int, tenant_id: int | None, wanted: str, response_time_ms: float | None) -> bool:
    """Record a beat that changes nothing but the time in Redis. False when it may
    change the status (or the instance is unknown, or another tenant's): the
    caller takes the slow path. Redis errors propagate."""
    state = instance_state(instance_id=instance_id)
    if state is None:
        return False
    owner, current = state
    if tenant_id is not None and owner != tenant_id:
        return False
    if current != wanted and current != OUT_OF_SERVICE:
        return False
    if settings.REGISTRY_HEARTBEAT_LOCAL_INTERVAL > 0:
        _record_local(instance_id, response_time_ms)
        return True
    client = _redis()
    if response_time_ms is None:
        client.hset(BEATS_KEY, instance_id, repr(time.time()))
    else:
        pipe = client.pipeline(transaction=True)
        pipe.hset(BEATS_KEY, instance_id, repr(time.time()))
        pipe.hset(BEAT_RT_KEY, instance_id, repr(float(response_time_ms)))
        pipe.execute()
    return True


# --- this process's beats, before Redis ----------------------------------------------------
#
# With REGISTRY_HEARTBEAT_LOCAL_INTERVAL > 0 a buffered beat is not even a Redis
# round trip: it is kept in this process's memory (the newest per instance) and
# a background thread pushes them all to the Redis buffer every interval, one
# pipelined HSET of many beats. A beat therefore reaches Redis at most about one
# interval after it arrived (heartbeat_flush, the sweep's and the active checks'
# in this process push first); the sweep allows ``sweep_grace()`` beyond the TTL
# for the other processes' (registry.sweep). If Redis refuses a push, the beats
# go to the database (the set-based UPDATE of a flush); if that fails too they
# stay in memory for the next push, with a warning: a beat is never dropped
# silently. A process killed outright (SIGKILL) loses at most its last interval
# of beats; the next beat of each of those instances brings the time back.

_local: dict[int, tuple[float, float | None]] = {}
_local_lock = threading.Lock()
_pusher: list = [None, 0]  # the push thread and the pid it runs in (a fork starts its own)


def sweep_grace() -> float:
    """How much later than its TTL the sweep judges an instance silent: twice the
    local push interval (a beat waits at most one interval, plus the push)."""
    return 2 * settings.REGISTRY_HEARTBEAT_LOCAL_INTERVAL


def _record_local(instance_id: int, response_time_ms: float | None) -> None:
    now = time.time()
    with _local_lock:
        if response_time_ms is None:
            old = _local.get(instance_id)
            response_time_ms = None if old is None else old[1]  # as the Redis buffer keeps the last one
        _local[instance_id] = (now, None if response_time_ms is None else float(response_time_ms))
    if _pusher[1] != os.getpid() or _pusher[0] is None:
        _start_pusher()


def _start_pusher() -> None:
    with _local_lock:
        if _pusher[1] == os.getpid() and _pusher[0] is not None:
            return
        thread = threading.Thread(target=_push_loop, name="heartbeat-push", daemon=True)
        _pusher[:] = [thread, os.getpid()]
    atexit.register(push_local_beats)
    thread.start()


def _push_loop() -> None:
    while True:
        time.sleep(max(settings.REGISTRY_HEARTBEAT_LOCAL_INTERVAL, 0.05))
        try:
            push_local_beats()
        except Exception:  # noqa: BLE001 - kept in memory by push_local_beats; the thread goes on
            logger.exception("heartbeat push failed")
        finally:
            connection.close()  # this thread's database connection, if the fallback opened one


def push_local_beats() -> int:
    """Push this process's beats to the Redis buffer (or, Redis refusing, to the
    database); the number pushed. Beats that could be written nowhere stay."""
    with _local_lock:
        if not _local:
            return 0
        taken = dict(_local)
        _local.clear()
    try:
        pipe = _redis().pipeline(transaction=True)
        pipe.hset(BEATS_KEY, mapping={iid: repr(ts) for iid, (ts, _rt) in taken.items()})
        rts = {iid: repr(rt) for iid, (_ts, rt) in taken.items() if rt is not None}
        if rts:
            pipe.hset(BEAT_RT_KEY, mapping=rts)
        pipe.execute()
        return len(taken)
    except Exception:  # noqa: BLE001 - Redis down: the database takes them
        _redis_down_until[0] = time.monotonic() + _REDIS_RETRY_AFTER
        logger.warning("heartbeat push: Redis unavailable, %d beat(s) written to the database", len(taken))
    try:
        with transaction.atomic():
            hold_flushes()
            _write_beats({iid: [ts, rt] for iid, (ts, rt) in taken.items()})
        return len(taken)
    except Exception:  # noqa: BLE001 - kept for the next push
        logger.warning("heartbeat push: database unavailable too, %d beat(s) kept for the next push", len(taken))
    with _local_lock:
        for iid, (ts, rt) in taken.items():
            newer = _local.get(iid)
            if newer is None:
                _local[iid] = (ts, rt)
            elif newer[1] is None and rt is not None:
                _local[iid] = (newer[0], rt)
    return 0


def instance_heartbeat(
    *, instance_id: int, status: str | None = None, response_time_ms: float | None = None, actor: str,
    tenant_id: int | None = None,
) -> Instance | None:
    """A heartbeat. When the status does not change: one Redis round trip (the
    buffer, written to the database by ``heartbeat_flush``), or with Redis down
    or not configured one conditional UPDATE.

    ``status`` is the instance's own view of its health; a drained
    instance stays out of service. Returns None for an unknown instance.
    """
    REGISTRY_HEARTBEATS.inc()
    if status is not None and status not in REPORTABLE:
        raise ValidationFailed(f"status must be one of {', '.join(REPORTABLE)}")
    wanted = status or HEALTHY
    # Fast path: nothing but the time changes (the status is already what the
    # instance reports, or it is drained and stays so).
    if _buffering():
        try:
            if _buffer_beat(instance_id=instance_id, tenant_id=tenant_id, wanted=wanted, response_time_ms=response_time_ms):
                return Instance(pk=instance_id)
        except Exception:  # noqa: BLE001 - Redis down: the database takes the beat
            _redis_down_until[0] = time.monotonic() + _REDIS_RETRY_AFTER
            logger.warning("heartbeat buffer unavailable; heartbeats go to the database for %.0f s", _REDIS_RETRY_AFTER)
    now = timezone.now()
    if _touch(instance_id=instance_id, tenant_id=tenant_id, now=now, response_time_ms=response_time_ms,
              statuses=(wanted, OUT_OF_SERVICE)):
        return Instance(pk=instance_id)
    qs = Instance.objects.filter(pk=instance_id)
    if tenant_id is not None:
        qs = qs.filter(service__tenant_id=tenant_id)
    with transaction.atomic():
        instance = qs.select_for_update().select_related("service__tenant").first()
        if instance is None:
            return None
        old = instance.status
        instance.last_heartbeat = now
        if response_time_ms is not None:
            instance.response_time_ms = response_time_ms
        if old != OUT_OF_SERVICE and not _held_down_by_checks(instance, old, wanted):
            instance.status = wanted
        instance.save(update_fields=["last_heartbeat", "response_time_ms", "status"])
        if instance.status != old:
            discovery_changed([(instance.service.tenant_id, instance.service.name)])  # caches before the event
            instance_status_event(instance, old=old, new=instance.status, actor=actor, reason="heartbeat")
        # Also when nothing changed: the buffered path took a stale status for
        # this one (or had none), and asks again next time.
        instance_state_forget(instance.pk)
    return instance


def _take_buffers(client) -> tuple[list[str], dict[int, list]]:
    """Move the buffers aside and read every taken buffer: (tokens, {id: [epoch|None, rt|None]})."""
    token = uuid.uuid4().hex
    tokens = client.eval(_TAKE_SCRIPT, 5, BEATS_KEY, BEAT_RT_KEY, *_flushing_keys(token), FLUSHING_KEY, token)
    tokens = sorted(t.decode() if isinstance(t, bytes) else str(t) for t in tokens)
    if not tokens:
        return [], {}
    pipe = client.pipeline(transaction=False)
    for t in tokens:
        for key in _flushing_keys(t):
            pipe.hgetall(key)
    got = pipe.execute()
    rows: dict[int, list] = {}
    for i in range(0, len(got), 2):
        beats, rts = got[i], got[i + 1]
        for raw_id in set(beats) | set(rts):
            ts = float(beats[raw_id]) if raw_id in beats else None
            rt = float(rts[raw_id]) if raw_id in rts else None
            row = rows.setdefault(int(raw_id), [None, None])
            # Two buffers naming one instance (a flush that died): the newer beat wins.
            if ts is not None and (row[0] is None or ts >= row[0]):
                row[0] = ts
                if rt is not None:
                    row[1] = rt
            elif rt is not None and row[1] is None:
                row[1] = rt
    return tokens, rows


def _write_beats(rows: dict[int, list]) -> None:
    """Write buffered beats: one statement per FLUSH_CHUNK rows on PostgreSQL. A beat
    never moves ``last_heartbeat`` back (the slow path may have written a newer one)."""
    table = Instance._meta.db_table
    items = sorted(rows.items())
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for start in range(0, len(items), FLUSH_CHUNK):
                chunk = items[start : start + FLUSH_CHUNK]
                cursor.execute(
                    f"UPDATE {table} AS i SET last_heartbeat = GREATEST(i.last_heartbeat, to_timestamp(v.ts)), "
                    f"response_time_ms = COALESCE(v.rt, i.response_time_ms) "
                    f"FROM unnest(%s::bigint[], %s::double precision[], %s::double precision[]) AS v(id, ts, rt) "
                    f"WHERE i.id = v.id",
                    [[iid for iid, _ in chunk], [ts for _, (ts, _rt) in chunk], [rt for _, (_ts, rt) in chunk]],
                )
            return
        beats = [(datetime.fromtimestamp(ts, UTC), iid) for iid, (ts, _rt) in items if ts is not None]
        rts = [(rt, iid) for iid, (_ts, rt) in items if rt is not None]
        if beats:
            cursor.executemany(f"UPDATE {table} SET last_heartbeat = %s WHERE id = %s AND last_heartbeat < %s",
                               [(when, iid, when) for when, iid in beats])
        if rts:
            cursor.executemany(f"UPDATE {table} SET response_time_ms = %s WHERE id = %s", rts)


def hold_flushes() -> None:
    """Until this transaction ends, no heartbeat flush writes rows: the sweep's and
    the active checks' set-based UPDATEs and a flush's could otherwise deadlock
    on the same rows. Blocking: a flush takes milliseconds."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_FLUSH_LOCK_ID])


def heartbeat_flush() -> dict[str, Any]:
    """Write the heartbeat buffer to the database, set-based.

    The buffers are renamed aside under a new token (atomically: beats that
    arrive meanwhile go to a fresh buffer), read, written, and deleted only after
    the commit. A flush that dies in between leaves its token in
    ``registry:beats:flushing`` and the next flush writes it (writing a beat twice
    is harmless). Flushes take a lock, so two never write the same rows at once.
    With Redis down or not configured there is nothing to do: heartbeats then go
    to the database directly.
    """
    if not settings.REDIS_URL:
        return {"skipped": "no_redis"}
    push_local_beats()  # this process's beats first
    with transaction.atomic():
        hold_flushes()  # one flush at a time
        try:
            client = _redis()
            tokens, rows = _take_buffers(client)
        except Exception:  # noqa: BLE001 - Redis down: nothing can be read; beats go to the database meanwhile
            logger.warning("heartbeat flush: Redis unavailable, nothing flushed")
            return {"skipped": "redis_down"}
        if not tokens:
            return {"flushed": 0}
        if rows:
            _write_beats(rows)

        def forget() -> None:
            try:
                pipe = client.pipeline(transaction=True)
                for t in tokens:
                    pipe.delete(*_flushing_keys(t))
                pipe.srem(FLUSHING_KEY, *tokens)
                pipe.execute()
            except Exception:  # noqa: BLE001 - written already; the next flush writes them again, harmlessly
                logger.warning("heartbeat flush: could not delete %d flushed buffer(s)", len(tokens))

        transaction.on_commit(forget)
    return {"flushed": len(rows), "buffers": len(tokens)}


