"""Registry writes: register, heartbeat, drain/restore, deregister, and the beat sweep."""
from __future__ import annotations

import logging
import secrets as pysecrets
import time
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from core.audit import set_actor
from core.errors import NotFound, ValidationFailed
from core.validators import url_check
from core.jsonvalue import validate_json_value
from events.services import event_record, events_record_many
from tenants.models import Tenant

from .models import HEALTHY, LIVE, OUT_OF_SERVICE, STARTING, UNHEALTHY, Instance, Service, ServiceTokenSecret, SweepState
from .selectors import (
    discovery_changed,
    instance_state,
    instance_state_forget,
    instance_tenant_forget,
    service_token_secrets_forget,
)

logger = logging.getLogger(__name__)

REPORTABLE = (HEALTHY, UNHEALTHY, STARTING)


def _status_event(instance: Instance, *, old: str, new: str, actor: str, reason: str) -> None:
    event_record(
        tenant=instance.service.tenant, resource_type="instance", action="status_changed", actor=actor,
        key=instance.service.name, service_name=instance.service.name,
        data={"id": instance.pk, "url": instance.url, "from": old, "to": new, "reason": reason},
    )


def instance_register(
    *, tenant: Tenant, service_name: str, url: str, health_check_url: str = "", metadata: dict | None = None,
    status: str = HEALTHY, actor: str,
) -> tuple[Instance, bool]:
    """Register an instance; the same URL again refreshes it and keeps its id. Returns (instance, created)."""
    if status not in REPORTABLE:
        raise ValidationFailed(f"status must be one of {', '.join(REPORTABLE)}")
    url_check(url, "service_url")
    if health_check_url:
        url_check(health_check_url, "health_check_url")
    validate_json_value(metadata, what="metadata")
    now = timezone.now()
    with transaction.atomic():
        service, _ = Service.objects.get_or_create(tenant=tenant, name=service_name)
        instance = Instance.objects.select_for_update().filter(service=service, url=url).first()
        created = instance is None
        old = None if created else instance.status
        if created:
            instance = Instance(service=service, url=url)
        instance.health_check_url = health_check_url or ""
        instance.metadata = metadata or {}
        instance.last_heartbeat = now
        instance.registered_by = actor
        # A drained instance stays drained until an operator restores it.
        if old != OUT_OF_SERVICE:
            instance.status = status
        instance.check_failures = instance.check_successes = 0
        instance.save()
        instance.service = service
        service.tenant = tenant
        event_record(
            tenant=tenant, resource_type="instance", action="registered" if created else "refreshed", actor=actor,
            key=service_name, service_name=service_name,
            data={"id": instance.pk, "url": url, "status": instance.status, "metadata": instance.metadata},
        )
        discovery_changed([(tenant.pk, service_name)])
        instance_state_forget(instance.pk)
    return instance, created


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
    from django_redis import get_redis_connection

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
    client = _redis()
    if response_time_ms is None:
        client.hset(BEATS_KEY, instance_id, repr(time.time()))
    else:
        pipe = client.pipeline(transaction=True)
        pipe.hset(BEATS_KEY, instance_id, repr(time.time()))
        pipe.hset(BEAT_RT_KEY, instance_id, repr(float(response_time_ms)))
        pipe.execute()
    return True


def instance_heartbeat(
    *, instance_id: int, status: str | None = None, response_time_ms: float | None = None, actor: str,
    tenant_id: int | None = None,
) -> Instance | None:
    """A heartbeat. When the status does not change: one Redis round trip (the
    buffer, written to the database by ``heartbeat_flush``), or with Redis down
    or not configured one conditional UPDATE.

    ``status`` is the instance's own view of its health (seed 001); a drained
    instance stays out of service. Returns None for an unknown instance.
    """
    from config_hub.metrics import REGISTRY_HEARTBEATS

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
            _status_event(instance, old=old, new=instance.status, actor=actor, reason="heartbeat")
            discovery_changed([(instance.service.tenant_id, instance.service.name)])
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
        from datetime import datetime, timezone as dt_timezone

        beats = [(datetime.fromtimestamp(ts, dt_timezone.utc), iid) for iid, (ts, _rt) in items if ts is not None]
        rts = [(rt, iid) for iid, (_ts, rt) in items if rt is not None]
        if beats:
            cursor.executemany(f"UPDATE {table} SET last_heartbeat = %s WHERE id = %s AND last_heartbeat < %s",
                               [(when, iid, when) for when, iid in beats])
        if rts:
            cursor.executemany(f"UPDATE {table} SET response_time_ms = %s WHERE id = %s", rts)


def _hold_flushes() -> None:
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
    with transaction.atomic():
        _hold_flushes()  # one flush at a time
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


def instance_set_status(*, instance: Instance, status: str, actor: str, user_id: int | None = None) -> Instance:
    """An operator's drain (``out_of_service``) or restore (``healthy``)."""
    if status not in (OUT_OF_SERVICE, HEALTHY):
        raise ValidationFailed("operators drain (out_of_service) or restore (healthy)")
    with transaction.atomic():
        locked = Instance.objects.select_for_update().select_related("service__tenant").get(pk=instance.pk)
        old = locked.status
        if old == status:
            return locked
        locked.status = status
        if status == HEALTHY:
            # Restored: it gets a full TTL to beat before the sweep judges it.
            locked.last_heartbeat = timezone.now()
        locked.save(update_fields=["status", "last_heartbeat"])
        _status_event(locked, old=old, new=status, actor=actor, reason="drained" if status == OUT_OF_SERVICE else "restored")
        discovery_changed([(locked.service.tenant_id, locked.service.name)])
        instance_state_forget(locked.pk)
    return locked


def instance_drain(*, instance: Instance, actor: str, user_id: int | None = None) -> Instance:
    return instance_set_status(instance=instance, status=OUT_OF_SERVICE, actor=actor, user_id=user_id)


def instance_restore(*, instance: Instance, actor: str, user_id: int | None = None) -> Instance:
    return instance_set_status(instance=instance, status=HEALTHY, actor=actor, user_id=user_id)


def instance_deregister(*, instance_id: int, tenant_id: int | None, actor: str) -> None:
    with transaction.atomic():
        qs = Instance.objects.select_related("service__tenant").filter(pk=instance_id)
        if tenant_id is not None:
            qs = qs.filter(service__tenant_id=tenant_id)
        instance = qs.first()
        if instance is None:
            raise NotFound("instance not found")
        event_record(
            tenant=instance.service.tenant, resource_type="instance", action="deregistered", actor=actor,
            key=instance.service.name, service_name=instance.service.name, data={"id": instance.pk, "url": instance.url},
        )
        instance_tenant_forget(instance.pk)
        instance_state_forget(instance.pk)
        instance.delete()
        discovery_changed([(instance.service.tenant_id, instance.service.name)])


def service_delete(*, service: Service, actor: str) -> int:
    """Remove a service and its instances: each instance is announced as deregistered
    and discovery forgets the service. Returns how many instances went with it."""
    with transaction.atomic():
        ids = list(Instance.objects.filter(service=service).order_by("id").values_list("pk", flat=True))
        for instance_id in ids:
            instance_deregister(instance_id=instance_id, tenant_id=service.tenant_id, actor=actor)
        Service.objects.filter(pk=service.pk).delete()
        discovery_changed([(service.tenant_id, service.name)])
    return len(ids)


def service_update(*, service: Service, owner: str | None = None, description: str | None = None, actor: str,
                   user_id: int | None = None) -> Service:
    if owner is not None:
        service.owner = owner
    if description is not None:
        service.description = description
    with transaction.atomic():
        set_actor(service, actor, user_id=user_id)
        service.save()
    return service


# --- the sweep ------------------------------------------------------------------------

_LOCK_ID = 0x5EED_0001


def _try_lock() -> bool:
    """One sweep at a time across every beat and worker (transaction-scoped)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_LOCK_ID])
            return bool(cursor.fetchone()[0])
    # SQLite has one writer at a time; the cache lock keeps two beats from
    # sweeping the same instant in the embedded setup.
    return bool(cache.add("registry:sweep-lock", 1, 5))


def _service_names(cursor, service_ids) -> dict[int, tuple[str, int, str]]:
    """service id -> (name, tenant id, tenant slug), in one query."""
    if not service_ids:
        return {}
    cursor.execute(
        f"SELECT s.id, s.name, s.tenant_id, t.slug FROM {Service._meta.db_table} s "
        f"JOIN tenants_tenant t ON t.id = s.tenant_id WHERE s.id IN ({','.join(['%s'] * len(service_ids))})",
        list(service_ids),
    )
    return {sid: (name, tid, slug) for sid, name, tid, slug in cursor.fetchall()}


def _batched_events(rows, names, action: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Event rows for (id, service_id, url) rows changed by the beat: one per service
    (chunks of 500 instances), not one per instance, so a mass change does not
    flood the outbox and the broker."""
    grouped: dict[int, list[tuple[int, str]]] = {}
    for iid, sid, url in rows:
        grouped.setdefault(sid, []).append((iid, url))
    out = []
    for sid, items in sorted(grouped.items()):
        name, tid, slug = names[sid]
        for start in range(0, len(items), 500):
            chunk = items[start : start + 500]
            out.append({"tenant_id": tid, "tenant_slug": slug, "resource_type": "instance", "action": action,
                        "key": name, "service_name": name, "actor": "system:beat",
                        "data": {"ids": [i for i, _ in chunk], "urls": [u for _, u in chunk], "count": len(chunk), **data}})
    return out


def instance_sweep(*, now=None) -> dict[str, Any]:
    """Mark silent instances unhealthy and remove long-dead ones, set-based.

    A constant number of queries whatever the fleet size. Safety:
    - self-preservation: after sweeps were missed for longer than the TTL (a gap
      beyond one REGISTRY_SWEEP_INTERVAL plus the TTL: hub or beat down),
      nobody is marked until one full TTL has passed;
    - if one sweep would mark more than REGISTRY_MAX_EVICT_RATIO of a service's
      live instances, they are marked but nothing is removed this round, and a
      warning is logged: a mass loss of heartbeats is more often the network.
    """
    # Buffered heartbeats first: nobody is judged silent on a beat still in Redis.
    heartbeat_flush()
    now = now or timezone.now()
    ttl = timedelta(seconds=settings.REGISTRY_HEARTBEAT_TTL)
    remove_after = timedelta(seconds=settings.REGISTRY_DEREGISTER_AFTER)
    ratio = settings.REGISTRY_MAX_EVICT_RATIO
    with transaction.atomic():
        if not _try_lock():
            return {"skipped": "locked"}
        _hold_flushes()
        state, _ = SweepState.objects.select_for_update().get_or_create(pk=1)
        # Down = sweeps missed for longer than the TTL: a gap beyond one normal
        # interval plus the TTL (with REGISTRY_HEARTBEAT_TTL=4 and the default
        # 15 s interval, every ordinary gap would otherwise look like an outage).
        outage = ttl + timedelta(seconds=settings.REGISTRY_SWEEP_INTERVAL)
        if state.last_sweep_at is None or now - state.last_sweep_at > outage:
            state.resumed_at = now
        state.last_sweep_at = now
        state.save()
        if state.resumed_at and now - state.resumed_at < ttl:
            return {"marked": 0, "removed": 0, "grace": True}
        cutoff = now - ttl
        table = Instance._meta.db_table
        live = tuple(LIVE)
        with connection.cursor() as cursor:
            # Per service: live instances and how many of them are silent.
            cursor.execute(
                f"SELECT service_id, COUNT(*), SUM(CASE WHEN last_heartbeat < %s THEN 1 ELSE 0 END) "
                f"FROM {table} WHERE status IN (%s, %s) GROUP BY service_id",
                [cutoff, *live],
            )
            mass = {sid for sid, total, stale in cursor.fetchall() if stale and total and stale / total > ratio}
            cursor.execute(
                f"UPDATE {table} SET status = %s WHERE status IN (%s, %s) AND last_heartbeat < %s "
                f"RETURNING id, service_id, url",
                [UNHEALTHY, *live, cutoff],
            )
            marked = cursor.fetchall()
            removed: list = []
            if not mass:
                cursor.execute(
                    f"DELETE FROM {table} WHERE status = %s AND last_heartbeat < %s RETURNING id, service_id, url",
                    [UNHEALTHY, now - remove_after],
                )
                removed = cursor.fetchall()
            service_ids = {row[1] for row in marked} | {row[1] for row in removed}
            names = _service_names(cursor, service_ids)
        if mass:
            logger.warning(
                "registry sweep: more than %.0f%% of the live instances of %d service(s) went silent at once; "
                "marked unhealthy, nothing removed this round (network trouble?)", ratio * 100, len(mass),
            )
        events_record_many(
            _batched_events(marked, names, "status_changed", {"reason": "heartbeat_ttl", "from": "live", "to": UNHEALTHY})
            + _batched_events(removed, names, "deregistered", {"reason": "deregister_after"})
        )
        discovery_changed((names[sid][1], names[sid][0]) for sid in service_ids)
        instance_tenant_forget(*(iid for iid, _sid, _url in removed))
        instance_state_forget(*(iid for iid, _sid, _url in marked), *(iid for iid, _sid, _url in removed))
    return {"marked": len(marked), "removed": len(removed), "grace": False, "mass_services": len(mass)}


# --- active checks --------------------------------------------------------------------


def _probe(url: str, timeout: float) -> bool | None:
    """One health-check probe: a 2xx answer within the timeout passes; redirects are
    not followed and the body is not read (the hub keeps no part of the answer).
    None: the outbound policy refuses the address (``core.outbound``), so the
    probe tells nothing and changes nothing (no oracle, no false "unhealthy")."""
    from core import outbound

    result = outbound.send("GET", url, headers={"user-agent": "config-hub-checks/1"},
                           connect_timeout=timeout, total_timeout=timeout)
    return None if result.blocked else result.ok


def instance_active_checks(*, now=None) -> dict[str, Any]:
    """Probe the health-check URL of every live or unhealthy instance that has one, in
    parallel, and change a status only after a run of the same answer:
    REGISTRY_CHECK_FAILURES consecutive failures mark a healthy (or starting)
    instance unhealthy; REGISTRY_CHECK_SUCCESSES consecutive passes bring an
    unhealthy one back, and only while its heartbeat is fresh (both signals must
    agree). A flapping instance never reaches either run, so discovery does not
    flap. Drained instances are not probed. Counters and statuses are written
    set-based: a constant number of queries whatever the fleet size.
    """
    from concurrent.futures import ThreadPoolExecutor

    if not settings.REGISTRY_ACTIVE_CHECKS:
        return {"skipped": "disabled"}
    if not cache.add("registry:checks-lock", 1, max(1, int(settings.REGISTRY_CHECK_INTERVAL))):
        return {"skipped": "locked"}
    now = now or timezone.now()
    targets = list(
        Instance.objects.filter(status__in=(HEALTHY, STARTING, UNHEALTHY)).exclude(health_check_url="")
        .values_list("pk", "health_check_url")[: settings.REGISTRY_CHECK_MAX_INSTANCES]
    )
    if not targets:
        return {"probed": 0, "down": 0, "up": 0, "blocked": 0}
    timeout = settings.REGISTRY_CHECK_TIMEOUT
    with ThreadPoolExecutor(max_workers=min(settings.REGISTRY_CHECK_CONCURRENCY, len(targets))) as pool:
        results = list(pool.map(lambda t: _probe(t[1], timeout), targets))
    passed = [pk for (pk, _url), ok in zip(targets, results) if ok is True]
    failed = [pk for (pk, _url), ok in zip(targets, results) if ok is False]
    blocked = len(targets) - len(passed) - len(failed)
    if blocked:
        logger.warning("active checks: %s health-check URL(s) refused by the outbound policy (see OUTBOUND_ALLOW)", blocked)
    table = Instance._meta.db_table
    fresh = now - timedelta(seconds=settings.REGISTRY_HEARTBEAT_TTL)
    if passed:
        # "Heartbeat fresh" must count the beats still in the buffer.
        heartbeat_flush()

    def ids(values) -> str:
        return ",".join(["%s"] * len(values))

    with transaction.atomic(), connection.cursor() as cursor:
        _hold_flushes()
        down: list = []
        up: list = []
        if failed:
            cursor.execute(f"UPDATE {table} SET check_failures = check_failures + 1, check_successes = 0 "
                           f"WHERE id IN ({ids(failed)})", failed)
            cursor.execute(f"UPDATE {table} SET status = %s WHERE id IN ({ids(failed)}) AND status IN (%s, %s) "
                           f"AND check_failures >= %s RETURNING id, service_id, url",
                           [UNHEALTHY, *failed, HEALTHY, STARTING, settings.REGISTRY_CHECK_FAILURES])
            down = cursor.fetchall()
        if passed:
            cursor.execute(f"UPDATE {table} SET check_successes = check_successes + 1, check_failures = 0 "
                           f"WHERE id IN ({ids(passed)})", passed)
            cursor.execute(f"UPDATE {table} SET status = %s WHERE id IN ({ids(passed)}) AND status = %s "
                           f"AND check_successes >= %s AND last_heartbeat >= %s RETURNING id, service_id, url",
                           [HEALTHY, *passed, UNHEALTHY, settings.REGISTRY_CHECK_SUCCESSES, fresh])
            up = cursor.fetchall()
        names = _service_names(cursor, {row[1] for row in down} | {row[1] for row in up})
        events_record_many(
            _batched_events(down, names, "status_changed", {"reason": "active_check", "from": HEALTHY, "to": UNHEALTHY})
            + _batched_events(up, names, "status_changed", {"reason": "active_check", "from": UNHEALTHY, "to": HEALTHY})
        )
        discovery_changed((names[sid][1], names[sid][0]) for sid in names)
        instance_state_forget(*(row[0] for row in down), *(row[0] for row in up))
    return {"probed": len(targets), "down": len(down), "up": len(up), "blocked": blocked}


# --- service-token secrets per tenant ------------------------------------------------


def service_token_secret_create(*, tenant: Tenant, name: str = "", actor: str) -> tuple[ServiceTokenSecret, str]:
    """A new HS256 secret for the tenant's service tokens; returns (row, secret).
    The secret is stored encrypted and shown once; tokens may name it with its
    ``kid`` header. The tenant's other secrets stay valid (rotation)."""
    if len(name) > 100:
        raise ValidationFailed("a secret's name has at most 100 characters")
    raw = pysecrets.token_urlsafe(32)
    row = ServiceTokenSecret(tenant=tenant, kid=f"stk_{pysecrets.token_hex(8)}", name=name, secret=raw, created_by=actor)
    with transaction.atomic():
        row.save()
        event_record(tenant=tenant, resource_type="service_token_secret", action="created", actor=actor, key=row.kid,
                     data={"kid": row.kid, "name": name})
        service_token_secrets_forget(tenant.pk)
    return row, raw


def service_token_secret_revoke(*, secret: ServiceTokenSecret, actor: str) -> ServiceTokenSecret:
    """Tokens signed with it are refused from the next request on, in every process."""
    with transaction.atomic():
        ServiceTokenSecret.objects.filter(pk=secret.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        secret.refresh_from_db(fields=["revoked_at"])
        event_record(tenant=secret.tenant, resource_type="service_token_secret", action="revoked", actor=actor,
                     key=secret.kid, data={"kid": secret.kid, "name": secret.name})
        service_token_secrets_forget(secret.tenant_id)
    return secret


def service_token_secret_delete(*, secret: ServiceTokenSecret, actor: str) -> None:
    with transaction.atomic():
        event_record(tenant=secret.tenant, resource_type="service_token_secret", action="deleted", actor=actor,
                     key=secret.kid, data={"kid": secret.kid, "name": secret.name})
        service_token_secrets_forget(secret.tenant_id)
        secret.delete()
