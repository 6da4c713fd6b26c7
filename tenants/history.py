"""A config entry's history and its secrets.

The secret column is excluded from ConfigEntry's history, and a change of a
secret entry is reported as changed, never with its values. When an entry
becomes secret, its earlier plain value may be the secret now:
:func:`config_history_scrub` (called by ``tenants.services.configs.config_update``
in the change's transaction) empties the value of all its earlier historical rows
and drops it from its earlier events. Rows older than an entry's latest secret
row are shown as secret too (values hidden, ``changed`` only), in the API
(``config_hub.history``) and in the admin's history (:class:`SecretAwareHistoryHelper`).
"""
from __future__ import annotations

from typing import Any

from django.db.models import Max

from core.admin import JSONHistoryHelper
from events.models import Event

from .models import ConfigEntry


def config_history_scrub(*, entry) -> int:
    """Forget the plain values an entry had before it became secret. Returns the rows scrubbed.

    Call inside the transaction that saves the entry as secret. Sets ``value`` to
    NULL in every historical row of the entry (the new secret row has NULL
    already) and, when there was a plain value to forget, removes ``value`` from
    the entry's earlier change events (the watch shows those again; webhooks
    already delivered cannot be called back). Cheap when there is nothing to do:
    an entry that was always secret has no non-NULL historical value.
    """
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


def secret_until(ids) -> dict[int, int]:
    """Per config entry id: the history_id of its latest secret row. Rows older than
    that were scrubbed (or predate scrubbing) and are shown as secret."""
    rows = ConfigEntry.history.filter(id__in=list(ids), is_secret=True).values("id").annotate(last=Max("history_id"))
    return {r["id"]: r["last"] for r in rows}


def masked(rec, secret_until: dict[int, int]) -> bool:
    if getattr(rec, "is_secret", False):
        return True
    last = secret_until.get(rec.id)
    return last is not None and rec.history_id < last



class SecretAwareHistoryHelper(JSONHistoryHelper):
    """The admin history page's field changes for ConfigEntry: a secret's value
    (or a value scrubbed when the entry became secret) shows as "changed", never
    as old → new."""

    def context_for_delta_changes(self, delta) -> list[dict[str, Any]]:
        records = [r for r in (delta.old_record, delta.new_record) if r is not None]
        hidden_from = secret_until({r.id for r in records})
        hide = any(masked(r, hidden_from) for r in records)
        out = []
        value_listed = False
        for change in delta.changes:
            if hide and change.field == "value":
                out.append({"field": "Value", "old": "(hidden)", "new": "changed"})
                value_listed = True
                continue
            formatted = self.format_delta_change(change)
            out.append({"field": formatted.field, "old": formatted.old, "new": formatted.new})
        versions = {getattr(r, "version", None) for r in records}
        if hide and not value_listed and len(versions) > 1:
            out.append({"field": "Value", "old": "(hidden)", "new": "changed"})
        return out


def secret_aware_history_helper(model, historical_record):
    """For ``SimpleHistoryAdmin.get_historical_record_context_helper`` of ConfigEntry."""
    return SecretAwareHistoryHelper(model, historical_record)
