"""The audit trail for auditors' tools (``GET /api/v1/history/``): field-level
changes with their actors, for every app's models.

Built on django-simple-history's historical tables. Secret values never appear
(``tenants.history``: a secret entry's value changes are reported as
``{"field": "value", "changed": true}``).
"""
from __future__ import annotations

from typing import Any

from django.db.models import Q

from core.errors import ValidationFailed
from events.models import WebhookSubscription
from flags.models import Flag, FlagEnvironment
from registry.models import Service
from tenants.history import masked, secret_until
from tenants.models import ApiKey, ConfigEntry, ConfigSchema, Environment, Tenant

_TYPES = {"+": "created", "~": "updated", "-": "deleted"}
_SKIP = {"updated_at", "created_at", "history_actor"}


def _resources() -> dict[str, Any]:
    return {
        "config": ConfigEntry, "schema": ConfigSchema, "tenant": Tenant, "environment": Environment,
        "api_key": ApiKey, "flag": Flag, "flag_state": FlagEnvironment, "service": Service, "webhook": WebhookSubscription,
    }


def _value(v: Any) -> Any:
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, (str, int, float, bool, list, dict)) or v is None:
        return v
    return str(v)


def history_rows(*, resource: str, key: str | None = None, object_id: int | None = None,
                 tenant_id: int | None = None, all_tenants: bool = True, limit: int = 200) -> list[dict[str, Any]]:
    models = _resources()
    if resource not in models:
        raise ValidationFailed(f"resource must be one of {', '.join(sorted(models))}", details={"resource": sorted(models)})
    model = models[resource]
    qs = model.history.all().select_related("history_user").order_by("history_date", "history_id")
    field_names = {f.name for f in model.history.model._meta.fields}
    if key is not None:
        key_field = "key" if "key" in field_names else ("name" if "name" in field_names else ("slug" if "slug" in field_names else None))
        if key_field is None:
            raise ValidationFailed(f"'{resource}' has no key; filter by id")
        qs = qs.filter(**{key_field: key})
    if object_id is not None:
        qs = qs.filter(id=object_id)
    if not all_tenants:
        if "tenant" in field_names:
            qs = qs.filter(Q(tenant_id=tenant_id) | Q(tenant__isnull=True)) if resource == "config" else qs.filter(tenant_id=tenant_id)
        elif resource == "tenant":
            qs = qs.filter(id=tenant_id)
        elif resource in ("api_key", "flag_state", "webhook"):
            qs = qs.none()
    rows = list(qs[:limit])
    hidden_from = secret_until({r.id for r in rows}) if resource == "config" else {}
    out = []
    previous: dict[Any, Any] = {}
    for rec in rows:
        prev = previous.get(rec.id)
        changes: list[dict[str, Any]] = []
        secret = resource == "config" and masked(rec, hidden_from)
        if prev is not None and rec.history_type == "~":
            delta = rec.diff_against(prev)
            for change in delta.changes:
                if change.field in _SKIP:
                    continue
                if change.field == "value" and (secret or masked(prev, hidden_from)):
                    changes.append({"field": "value", "changed": True})
                    continue
                changes.append({"field": change.field, "old": _value(change.old), "new": _value(change.new)})
            if secret and getattr(rec, "version", None) != getattr(prev, "version", None) and not any(c["field"] == "value" for c in changes):
                changes.append({"field": "value", "changed": True})
        previous[rec.id] = rec
        row = {
            "history_id": rec.history_id,
            "resource": resource,
            "id": rec.id,
            "type": _TYPES.get(rec.history_type, rec.history_type),
            "date": rec.history_date.isoformat(),
            "actor": rec.history_actor,
            "user": rec.history_user.get_username() if rec.history_user_id else None,
            "reason": rec.history_change_reason,
            "changes": changes,
        }
        for name in ("key", "name", "slug", "version"):
            if name in field_names:
                row[name] = getattr(rec, name)
        if resource == "config":
            row["value"] = None if secret else rec.value
            row["is_secret"] = secret
        out.append(row)
    return out
