"""The stale sweep (the beat, every REGISTRY_SWEEP_INTERVAL): silent instances are
marked unhealthy, long-dead ones removed, set-based, one sweep at a time."""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from events.services import events_record_many

from .bulk import batched_events, service_names
from .heartbeats import heartbeat_flush, hold_flushes, sweep_grace
from .models import LIVE, UNHEALTHY, Instance, SweepState
from .selectors import discovery_changed, instance_state_forget, instance_tenant_forget

logger = logging.getLogger(__name__)

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


def instance_sweep(*, now=None) -> dict[str, Any]:
    """Mark silent instances unhealthy and remove long-dead ones, set-based (one scan
    of the table, then one UPDATE and one DELETE only when there is something to do).

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
        hold_flushes()
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
        cutoff = now - ttl - timedelta(seconds=sweep_grace())  # beats still in a web process's memory
        table = Instance._meta.db_table
        live = tuple(LIVE)
        remove_before = now - remove_after
        with connection.cursor() as cursor:
            # One scan, per service: live instances, the silent ones among them,
            # and unhealthy ones due for removal. A round with nothing to mark or
            # remove (the usual one) needs no other statement.
            cursor.execute(
                f"SELECT service_id, SUM(CASE WHEN status IN (%s, %s) THEN 1 ELSE 0 END), "
                f"SUM(CASE WHEN status IN (%s, %s) AND last_heartbeat < %s THEN 1 ELSE 0 END), "
                f"SUM(CASE WHEN status = %s AND last_heartbeat < %s THEN 1 ELSE 0 END) "
                f"FROM {table} GROUP BY service_id",
                [*live, *live, cutoff, UNHEALTHY, remove_before],
            )
            counts = cursor.fetchall()
            mass = {sid for sid, total, stale, _dead in counts if stale and total and stale / total > ratio}
            marked: list = []
            if any(stale for _sid, _total, stale, _dead in counts):
                cursor.execute(
                    f"UPDATE {table} SET status = %s WHERE status IN (%s, %s) AND last_heartbeat < %s "
                    f"RETURNING id, service_id, url",
                    [UNHEALTHY, *live, cutoff],
                )
                marked = cursor.fetchall()
            removed: list = []
            if not mass and any(dead for _sid, _live, _stale, dead in counts):
                cursor.execute(
                    f"DELETE FROM {table} WHERE status = %s AND last_heartbeat < %s RETURNING id, service_id, url",
                    [UNHEALTHY, remove_before],
                )
                removed = cursor.fetchall()
            service_ids = {row[1] for row in marked} | {row[1] for row in removed}
            names = service_names(cursor, service_ids)
        if mass:
            logger.warning(
                "registry sweep: more than %.0f%% of the live instances of %d service(s) went silent at once; "
                "marked unhealthy, nothing removed this round (network trouble?)", ratio * 100, len(mass),
            )
        # Caches before the events: after commit, callbacks run in registration order,
        # and a listener woken by an event must discover the new state.
        discovery_changed((names[sid][1], names[sid][0]) for sid in service_ids)
        instance_tenant_forget(*(iid for iid, _sid, _url in removed))
        instance_state_forget(*(iid for iid, _sid, _url in marked), *(iid for iid, _sid, _url in removed))
        events_record_many(
            batched_events(marked, names, "status_changed", {"reason": "heartbeat_ttl", "from": "live", "to": UNHEALTHY})
            + batched_events(removed, names, "deregistered", {"reason": "deregister_after"})
        )
    return {"marked": len(marked), "removed": len(removed), "grace": False, "mass_services": len(mass)}

