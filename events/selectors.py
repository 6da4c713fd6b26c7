"""Event reads: the watch cursor, webhook states, and history rows for auditors."""
from __future__ import annotations

from typing import Any

from django.db.models import Count, Q

from .models import Event, WebhookDelivery, WebhookSubscription, global_events_q


def events_after(*, tenant_id: int | None, all_tenants: bool, after: int, limit: int = 100,
                 tenant_filter: int | None = None) -> list[Event]:
    """Events after a cursor, oldest first, that a caller may see.

    A tenant-bound caller sees its tenant's events and global ones (global config
    entries, schemas, environments: what every tenant resolves, the same events
    every tenant's webhooks receive), never another tenant's nor platform-only
    ones (platform API keys, deleted tenants); a platform caller sees all, or one
    tenant with ``tenant_filter``.
    """
    qs = Event.objects.filter(pk__gt=after).order_by("id")
    if not all_tenants:
        qs = qs.filter(Q(tenant_id=tenant_id) | global_events_q())
    elif tenant_filter is not None:
        qs = qs.filter(Q(tenant_id=tenant_filter) | global_events_q())
    return list(qs[:limit])


def webhook_subscription_counts() -> dict[str, int]:
    rows = WebhookSubscription.objects.aggregate(
        active=Count("id", filter=Q(is_active=True, failing_since__isnull=True)),
        failing=Count("id", filter=Q(is_active=True, failing_since__isnull=False)),
        disabled=Count("id", filter=Q(is_active=False)),
    )
    return {k: v or 0 for k, v in rows.items()}


def subscription_out(sub: WebhookSubscription, *, secret: str | None = None) -> dict[str, Any]:
    out = {
        "id": sub.pk,
        "url": sub.url,
        "description": sub.description,
        "filter": {"resource_types": sub.resource_types, "key_prefix": sub.key_prefix or None,
                   "environment": sub.environment or None, "service_name": sub.service_name or None},
        "is_active": sub.is_active,
        "state": "disabled" if not sub.is_active else ("failing" if sub.failing_since else "active"),
        "failing_since": sub.failing_since.isoformat() if sub.failing_since else None,
        "disabled_at": sub.disabled_at.isoformat() if sub.disabled_at else None,
        "created_at": sub.created_at.isoformat() if sub.created_at else None,
    }
    if secret is not None:
        out["secret"] = secret
    return out


def events_undispatched(*, before, limit: int) -> list[int]:
    """Ids of events written before ``before`` and not fanned out yet (the outbox sweep), oldest first."""
    return list(
        Event.objects.filter(dispatched_at__isnull=True, created_at__lte=before).order_by("id").values_list("pk", flat=True)[:limit]
    )


def deliveries_due(*, now, before, limit: int) -> list[int]:
    """Ids of deliveries due since before ``before`` and not finished (the outbox sweep)."""
    return list(
        WebhookDelivery.objects.filter(
            status__in=[WebhookDelivery.PENDING, WebhookDelivery.RETRYING, WebhookDelivery.SENDING], next_attempt_at__lte=now
        ).filter(next_attempt_at__lte=before).values_list("pk", flat=True)[:limit]
    )
