"""Registry reads: discovery, the owner and status of an instance, counts.

The service-token secrets are read in ``tokens.py``."""
from __future__ import annotations

import random
import uuid
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count

from core import invalidation
from core.cache import LocalCache
from core.errors import DependencyDown, NotFound

from .models import HEALTHY, Instance, Service

# Query parameters of discovery that are not metadata filters.
_NOT_METADATA = {"format", "tenant"}


def instance_out(instance: Instance) -> dict[str, Any]:
    return _snapshot_row(instance, instance.service.name)


def _matches(row: dict[str, Any], filters: dict[str, str]) -> bool:
    metadata = row["metadata"] or {}
    return all(str(metadata.get(k)) == v for k, v in filters.items())


# --- discovery: cached healthy sets ---------------------------------------------
#
# Discovery is the hottest registry read and its answer changes only when an
# instance is registered, deregistered or changes status, never on an ordinary
# heartbeat. So each (tenant, service) keeps a snapshot of its healthy
# instances: in this process (dropped over Redis pub/sub, core.invalidation)
# and in Redis (under a generation token), both made obsolete after the commit
# of any change of membership or status (``discovery_changed``). A snapshot's ``last_heartbeat`` and
# ``response_time`` are as of when it was taken, at most
# REGISTRY_DISCOVERY_CACHE_TTL seconds ago. With Redis down every read goes to
# the database.


_snapshots = LocalCache("reg:disc:", push=True, max_items=10_000)


def _discovery_name(tenant_id: int, service_name: str) -> str:
    return f"reg:disc:{tenant_id}:{service_name}"


def _generation_key(tenant_id: int, service_name: str) -> str:
    return f"reg:gen:{tenant_id}:{service_name}"


def _snapshot_row(instance: Instance, service_name: str) -> dict[str, Any]:
    return {
        "id": instance.pk,
        "service_name": service_name,
        "service_url": instance.url,
        "url": instance.url,
        "health_check_url": instance.health_check_url or None,
        "status": instance.status,
        "metadata": instance.metadata,
        "last_heartbeat": instance.last_heartbeat.isoformat() if instance.last_heartbeat else None,
        "response_time": instance.response_time_ms,
        "registered_at": instance.registered_at.isoformat() if instance.registered_at else None,
    }


def _load_snapshot(tenant_id: int, service_name: str) -> dict[str, Any]:
    # The Redis copy is keyed by a generation that every change replaces, so a
    # reader that loaded before a commit stores its (old) snapshot under a key
    # nobody asks for any more. With Redis down there is no generation and every
    # read goes to the database.
    gen_key = _generation_key(tenant_id, service_name)
    generation = cache.get(gen_key)
    if generation is None and cache.add(gen_key, uuid.uuid4().hex[:12], None):
        generation = cache.get(gen_key)
    snapshot_key = f"reg:snap:{tenant_id}:{service_name}:{generation}"
    snapshot = cache.get(snapshot_key) if generation else None
    if snapshot is None:
        service = Service.objects.filter(tenant_id=tenant_id, name=service_name).first()
        rows = [] if service is None else [
            _snapshot_row(i, service_name) for i in Instance.objects.filter(service=service, status=HEALTHY).order_by("id")
        ]
        snapshot = {"registered": service is not None, "instances": rows}
        if generation:
            cache.set(snapshot_key, snapshot, settings.REGISTRY_DISCOVERY_CACHE_TTL)
    return snapshot


def discovery_changed(pairs) -> None:
    """Make discovery forget these (tenant_id, service_name) pairs once the current
    transaction commits (at once outside one). Every change of an instance's
    membership or status calls it."""
    pairs = sorted(set(pairs))
    if not pairs:
        return

    def drop() -> None:
        token = uuid.uuid4().hex[:12]
        cache.set_many({_generation_key(tid, name): token for tid, name in pairs}, timeout=None)
        invalidation.invalidate(*(_discovery_name(tid, name) for tid, name in pairs))

    transaction.on_commit(drop)


def instance_discover(*, tenant_id: int, service_name: str, filters: dict[str, str] | None = None) -> dict[str, Any]:
    """One healthy instance of a service (as ``instance_out`` shapes it), chosen at
    random so callers spread.

    404 for a service the tenant never registered; 503 when none is healthy
    (or none matches the metadata filters).
    """
    snapshot = _snapshots.get_or_load(_discovery_name(tenant_id, service_name), lambda: _load_snapshot(tenant_id, service_name),
                                      ttl=settings.REGISTRY_DISCOVERY_CACHE_TTL)
    if not snapshot["registered"]:
        raise NotFound(f"service '{service_name}' is not registered")
    candidates = [row for row in snapshot["instances"] if _matches(row, filters or {})] if filters else snapshot["instances"]
    if not candidates:
        if filters and snapshot["instances"]:
            # Healthy instances exist; the metadata filters left none: say so.
            wanted = ", ".join(f"{k}={v}" for k, v in sorted(filters.items()))
            raise DependencyDown(f"no healthy instance of '{service_name}' has metadata {wanted} "
                                 f"(query parameters of discovery filter on metadata)", code="no_healthy_instance",
                                 details={"filters": filters})
        raise DependencyDown(f"no healthy instance of '{service_name}'", code="no_healthy_instance")
    return random.choice(candidates)


def instances_healthy(*, tenant_id: int) -> list[Instance]:
    return list(
        Instance.objects.filter(service__tenant_id=tenant_id, status=HEALTHY).select_related("service").order_by("service__name", "id")
    )


def metadata_filters(query_params) -> dict[str, str]:
    return {k: v for k, v in query_params.items() if k not in _NOT_METADATA}


_owners = LocalCache("registry:instance-owner:", push=True, max_items=50_000)


def _instance_tenant_key(instance_id: int | str) -> str:
    return f"registry:instance-owner:{instance_id}"


def instance_owner(*, instance_id: int) -> tuple[int, str] | None:
    """(tenant id, service name) of an instance, for the service tokens: kept
    in this process and in Redis, dropped when the instance is deregistered
    (``instance_tenant_forget``). Neither changes while the instance exists."""
    key = _instance_tenant_key(instance_id)

    def load() -> tuple[int, str] | None:
        owner = cache.get(key)
        if owner is None:
            owner = Instance.objects.filter(pk=instance_id).values_list("service__tenant_id", "service__name").first()
            if owner is not None:
                owner = (owner[0], owner[1])
                cache.set(key, owner, 300)
        return owner

    return _owners.get_or_load(key, load)


def instance_tenant(*, instance_id: int) -> int | None:
    owner = instance_owner(instance_id=instance_id)
    return None if owner is None else owner[0]


def instance_tenant_forget(*instance_ids: int) -> None:
    """After commit: deregistered instances' service tokens stop naming a tenant.
    A mass removal (the sweep) drops every process's copies with one message."""
    keys = [_instance_tenant_key(i) for i in instance_ids]
    if not keys:
        return

    def drop() -> None:
        cache.delete_many(keys)
        if len(keys) <= 100:
            invalidation.invalidate(*keys)
        else:
            invalidation.invalidate(_instance_tenant_key("") + "*")

    transaction.on_commit(drop)


def instance_counts_by_status() -> dict[str, int]:
    return {row["status"]: row["n"] for row in Instance.objects.values("status").annotate(n=Count("id"))}


# --- an instance's (tenant, status) for the heartbeat's buffered path -----------
#
# A heartbeat that does not change the status only needs to know the instance's
# tenant and current status. Both live in this process (dropped over pub/sub) and
# in Redis; every change of an instance's status or membership drops them after
# commit (``instance_state_forget``). The Redis copies live under a generation
# token: a drop of a few instances leaves a short tombstone per instance, a mass
# drop (the sweep marking thousands) replaces the generation in one write.
# Loaders read the generation first and only ``add`` their copy, so a loader
# that read the database just before a commit cannot put the old status back
# where anyone reads it.

_STATE_TOMBSTONE = "-"
_STATE_TOMBSTONE_TTL = 10
_STATE_REDIS_TTL = 300
_STATE_GENERATION = "reg:inst-gen"


_states = LocalCache("reg:inst:", push=True, max_items=50_000)


def _instance_state_name(instance_id: int | str) -> str:
    return f"reg:inst:{instance_id}"


def _state_redis_key(instance_id: int, generation: str) -> str:
    return f"reg:inst:{generation}:{instance_id}"


def _state_generation() -> str:
    generation = cache.get(_STATE_GENERATION)
    if generation is None and cache.add(_STATE_GENERATION, uuid.uuid4().hex[:12], None):
        generation = cache.get(_STATE_GENERATION)
    return generation or "0"


def instance_state(*, instance_id: int) -> tuple[int, str] | None:
    """(tenant_id, status) of an instance, None for an unknown one: from this
    process, else Redis, else the database."""
    name = _instance_state_name(instance_id)

    def load() -> tuple[int, str] | None:
        key = _state_redis_key(instance_id, _state_generation())
        copy = cache.get(key)
        if copy is not None and copy != _STATE_TOMBSTONE:
            return tuple(copy)
        row = Instance.objects.filter(pk=instance_id).values_list("service__tenant_id", "status").first()
        if row is not None and copy is None:
            cache.add(key, list(row), _STATE_REDIS_TTL)
        return None if row is None else tuple(row)

    return _states.get_or_load(name, load)


def instance_state_forget(*instance_ids: int) -> None:
    """After commit: these instances' status changed (or they are gone), so the
    heartbeat's buffered path asks again. Many at once (the sweep) drop every
    process's copies with one prefix message."""
    ids = sorted(set(instance_ids))
    if not ids:
        return

    def drop() -> None:
        if len(ids) <= 100:
            generation = _state_generation()
            cache.set_many({_state_redis_key(i, generation): _STATE_TOMBSTONE for i in ids}, timeout=_STATE_TOMBSTONE_TTL)
            invalidation.invalidate(*(_instance_state_name(i) for i in ids))
        else:  # one write, whatever the number: every Redis copy becomes obsolete
            cache.set(_STATE_GENERATION, uuid.uuid4().hex[:12], None)
            invalidation.invalidate(_instance_state_name("") + "*")

    transaction.on_commit(drop)
