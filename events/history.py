"""The audit trail for auditors' tools: field-level changes with their actors.

Built on django-simple-history's historical tables. Secret values never appear:
the secret column is excluded from ConfigEntry's history, and a change of a
secret entry is reported as ``{"field": "value", "changed": true}``.

When an entry becomes secret, its earlier plain value may be the secret now:
:func:`config_history_scrub` (called by ``tenants.services.configs.config_update`` in the
change's transaction) empties the value of all its earlier historical rows and
drops it from its earlier events. Rows older than an entry's latest secret row
are shown as secret too (values hidden, ``changed`` only), in the API and in the
admin's history (:class:`SecretAwareHistoryHelper`).
"""
from __future__ import annotations

from typing import Any

from django.db.models import Max, Q

from core.errors import ValidationFailed

_TYPES = {"+": "created", "~": "updated", "-": "deleted"}
_SKIP = {"updated_at", "created_at", "history_actor"}


def _resources() -> dict[str, Any]:
    from flags.models import Flag, FlagEnvironment
    from registry.models import Service
    from tenants.models import ApiKey, ConfigEntry, ConfigSchema, Environment, Tenant

    from .models import WebhookSubscription

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


def config_history_scrub(*, entry) -> int:
    """Forget the plain values an entry had before it became secret. Returns the rows scrubbed.

    Call inside the transaction that saves the entry as secret. Sets ``value`` to
    NULL in every historical row of the entry (the new secret row has NULL
    already) and, when there was a plain value to forget, removes ``value`` from
    the entry's earlier change events (the watch shows those again; webhooks
    already delivered cannot be called back). Cheap when there is nothing to do:
    an entry that was always secret has no non-NULL historical value.
    """
    from tenants.models import ConfigEntry

    from .models import Event

    scrubbed = ConfigEntry.history.filter(id=entry.pk, value__isnull=False).update(value=None)
    if scrubbed:
        events = Event.objects.filter(
            tenant_id=entry.tenant_id, resource_type="config", key=entry.key, data__id=entry.pk, data__has_key="value",
        )
        for event in events.only("pk", "data"):
            data = {k: v for k, v in event.data.items() if k != "value"}
            data["value_redacted"] = True
            Event.objects.filter(pk=event.pk).update(data=data)
    return scrubbed


def _secret_until(ids) -> dict[int, int]:
    """Per config entry id: the history_id of its latest secret row. Rows older than
    that were scrubbed (or predate scrubbing) and are shown as secret."""
    from tenants.models import ConfigEntry

    rows = ConfigEntry.history.filter(id__in=list(ids), is_secret=True).values("id").annotate(last=Max("history_id"))
    return {r["id"]: r["last"] for r in rows}


def _masked(rec, secret_until: dict[int, int]) -> bool:
    if getattr(rec, "is_secret", False):
        return True
    last = secret_until.get(rec.id)
    return last is not None and rec.history_id < last


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
    secret_until = _secret_until({r.id for r in rows}) if resource == "config" else {}
    out = []
    previous: dict[Any, Any] = {}
    for rec in rows:
        prev = previous.get(rec.id)
        changes: list[dict[str, Any]] = []
        secret = resource == "config" and _masked(rec, secret_until)
        if prev is not None and rec.history_type == "~":
            delta = rec.diff_against(prev)
            for change in delta.changes:
                if change.field in _SKIP:
                    continue
                if change.field == "value" and (secret or _masked(prev, secret_until)):
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


def _secret_aware_helper_class():
    from simple_history.template_utils import HistoricalRecordContextHelper

    class SecretAwareHistoryHelper(HistoricalRecordContextHelper):
        """The admin history page's field changes for ConfigEntry: a secret's value
        (or a value scrubbed when the entry became secret) shows as "changed", never
        as old → new."""

        def context_for_delta_changes(self, delta) -> list[dict[str, Any]]:
            records = [r for r in (delta.old_record, delta.new_record) if r is not None]
            secret_until = _secret_until({r.id for r in records})
            masked = any(_masked(r, secret_until) for r in records)
            out = []
            value_listed = False
            for change in delta.changes:
                if masked and change.field == "value":
                    out.append({"field": "Value", "old": "(hidden)", "new": "changed"})
                    value_listed = True
                    continue
                formatted = self.format_delta_change(change)
                out.append({"field": formatted.field, "old": formatted.old, "new": formatted.new})
            versions = {getattr(r, "version", None) for r in records}
            if masked and not value_listed and len(versions) > 1:
                out.append({"field": "Value", "old": "(hidden)", "new": "changed"})
            return out

    return SecretAwareHistoryHelper


def secret_aware_history_helper(model, historical_record):
    """For ``SimpleHistoryAdmin.get_historical_record_context_helper`` of ConfigEntry."""
    return _secret_aware_helper_class()(model, historical_record)
