"""Announcing set-based status changes (the sweep, the active checks): the rows a
bulk UPDATE or DELETE returned become one event per service, not one per
instance, so a mass change does not flood the outbox and the broker."""
from __future__ import annotations

from typing import Any

from .models import Service


def service_names(cursor, service_ids) -> dict[int, tuple[str, int, str]]:
    """service id -> (name, tenant id, tenant slug), in one query."""
    if not service_ids:
        return {}
    cursor.execute(
        f"SELECT s.id, s.name, s.tenant_id, t.slug FROM {Service._meta.db_table} s "
        f"JOIN tenants_tenant t ON t.id = s.tenant_id WHERE s.id IN ({','.join(['%s'] * len(service_ids))})",
        list(service_ids),
    )
    return {sid: (name, tid, slug) for sid, name, tid, slug in cursor.fetchall()}


def batched_events(rows, names, action: str, data: dict[str, Any]) -> list[dict[str, Any]]:
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

