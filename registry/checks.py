"""Active health checks (the beat, every REGISTRY_CHECK_INTERVAL, when
REGISTRY_ACTIVE_CHECKS is on): the hub probes each instance's health-check URL
under the outbound policy and changes a status only after a run of the same
answer."""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from core import outbound
from events.services import events_record_many

from .bulk import batched_events, service_names
from .heartbeats import heartbeat_flush, hold_flushes, sweep_grace
from .models import HEALTHY, STARTING, UNHEALTHY, Instance
from .selectors import discovery_changed, instance_state_forget

logger = logging.getLogger(__name__)


def _probe(url: str, timeout: float) -> bool | None:
    """One health-check probe: a 2xx answer within the timeout passes; redirects are
    not followed and the body is not read (the hub keeps no part of the answer).
    None: the outbound policy refuses the address (``core.outbound``), so the
    probe tells nothing and changes nothing (no oracle, no false "unhealthy")."""
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
    passed = [pk for (pk, _url), ok in zip(targets, results, strict=True) if ok is True]
    failed = [pk for (pk, _url), ok in zip(targets, results, strict=True) if ok is False]
    blocked = len(targets) - len(passed) - len(failed)
    if blocked:
        logger.warning("active checks: %s health-check URL(s) refused by the outbound policy (see OUTBOUND_ALLOW)", blocked)
    table = Instance._meta.db_table
    # Beats still in a web process's memory: the sweep's grace (registry.heartbeats).
    fresh = now - timedelta(seconds=settings.REGISTRY_HEARTBEAT_TTL + sweep_grace())
    if passed:
        # "Heartbeat fresh" must count the beats still in the buffer.
        heartbeat_flush()

    def ids(values) -> str:
        return ",".join(["%s"] * len(values))

    with transaction.atomic(), connection.cursor() as cursor:
        hold_flushes()
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
        names = service_names(cursor, {row[1] for row in down} | {row[1] for row in up})
        # Caches before the events (a listener woken by one must discover the new state).
        discovery_changed((names[sid][1], names[sid][0]) for sid in names)
        instance_state_forget(*(row[0] for row in down), *(row[0] for row in up))
        events_record_many(
            batched_events(down, names, "status_changed", {"reason": "active_check", "from": HEALTHY, "to": UNHEALTHY})
            + batched_events(up, names, "status_changed", {"reason": "active_check", "from": UNHEALTHY, "to": HEALTHY})
        )
    return {"probed": len(targets), "down": len(down), "up": len(up), "blocked": blocked}
