"""Registry reads: discovery and the service tokens' instances."""
from __future__ import annotations

import random
from typing import Any

from django.core.cache import cache
from django.db.models import Count

from config_hub.errors import DependencyDown, NotFound

from .models import HEALTHY, Instance, Service

# Query parameters of discovery that are not metadata filters.
_NOT_METADATA = {"format", "tenant"}


def instance_out(instance: Instance) -> dict[str, Any]:
    return {
        "id": instance.pk,
        "service_name": instance.service.name,
        "service_url": instance.url,
        "url": instance.url,
        "health_check_url": instance.health_check_url or None,
        "status": instance.status,
        "metadata": instance.metadata,
        "last_heartbeat": instance.last_heartbeat.isoformat() if instance.last_heartbeat else None,
        "response_time": instance.response_time_ms,
        "registered_at": instance.registered_at.isoformat() if instance.registered_at else None,
    }


def _matches(instance: Instance, filters: dict[str, str]) -> bool:
    return all(str(instance.metadata.get(k)) == v for k, v in filters.items())


def instance_discover(*, tenant_id: int, service_name: str, filters: dict[str, str] | None = None) -> Instance:
    """One healthy instance of a service, chosen at random so callers spread.

    404 for a service the tenant never registered; 503 when none is healthy
    (or none matches the metadata filters).
    """
    service = Service.objects.filter(tenant_id=tenant_id, name=service_name).first()
    if service is None:
        raise NotFound(f"service '{service_name}' is not registered")
    candidates = [i for i in Instance.objects.filter(service=service, status=HEALTHY) if _matches(i, filters or {})]
    if not candidates:
        raise DependencyDown(f"no healthy instance of '{service_name}'", code="no_healthy_instance")
    chosen = random.choice(candidates)
    chosen.service = service
    return chosen


def instances_healthy(*, tenant_id: int) -> list[Instance]:
    return list(
        Instance.objects.filter(service__tenant_id=tenant_id, status=HEALTHY).select_related("service").order_by("service__name", "id")
    )


def metadata_filters(query_params) -> dict[str, str]:
    return {k: v for k, v in query_params.items() if k not in _NOT_METADATA}


def instance_tenant(*, instance_id: int) -> int | None:
    """The tenant of an instance, for seed 004's service tokens (cached)."""
    key = f"registry:instance-tenant:{instance_id}"
    tenant_id = cache.get(key)
    if tenant_id is None:
        tenant_id = Instance.objects.filter(pk=instance_id).values_list("service__tenant_id", flat=True).first()
        if tenant_id is None:
            return None
        cache.set(key, tenant_id, 300)
    return tenant_id


def instance_counts_by_status() -> dict[str, int]:
    return {row["status"]: row["n"] for row in Instance.objects.values("status").annotate(n=Count("id"))}
