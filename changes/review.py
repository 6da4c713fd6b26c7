"""What the admin's change request page shows and checks beyond the form: the
review panel (diff and affected services as text), the right to change schemas."""
from __future__ import annotations

from core.admin import MASK
from core.errors import Forbidden

from .changeset import FLAG_SET, SCHEMA_DELETE, SCHEMA_TYPES, text


def may_change_schemas(request, changes) -> None:
    """A schema is global: proposing or applying its change needs the permissions
    its own admin page needs (change a schema; delete one for ``schema.delete``)."""
    kinds = {c.get("type") for c in changes or [] if isinstance(c, dict)} & set(SCHEMA_TYPES)
    needed = {f"tenants.{'delete' if kind == SCHEMA_DELETE else 'change'}_configschema" for kind in kinds}
    if needed and not request.user.has_perms(sorted(needed)):
        raise Forbidden("changing schemas needs the permission to change (and, to delete one, delete) schemas",
                        code="schema_permission_required")


def _shown(value, masked: bool) -> str:
    return MASK if masked else text(value)


def review_rows(out: dict) -> dict:
    """The diff and the affected services as the review panel shows them (values as JSON text)."""
    diff = []
    for row in out["diff"]:
        if row["type"] == FLAG_SET:
            diff.append({"target": f"flag {row['name']}", "old": text(row["old"]), "new": text(row["new"]),
                         "note": "" if row["exists"] else "new flag"})
        elif row["type"] in SCHEMA_TYPES:
            diff.append({"target": f"schema {row['key']}", "old": text(row["old"]) if row["exists"] else "—",
                         "new": "(removed)" if row["type"] == SCHEMA_DELETE else text(row["new"]),
                         "note": "schema (every tenant)" if row["exists"] else "new schema (every tenant)"})
        else:
            masked = bool(row.get("masked"))
            target = f"{row['key']}" + (f" ({row['service_name']})" if row["service_name"] else "")
            diff.append({"target": target, "old": _shown(row["old"], masked) if row["exists"] else "—",
                         "new": "(removed)" if row["type"] == "config.delete" else _shown(row["new"], masked),
                         "note": "secret" if row["is_secret"] else ""})
    services = [{"service": s["service"] or "(no service named)",
                 "rows": [{"key": c["key"], "old": _shown(c["old"], bool(c.get("masked"))),
                           "new": _shown(c["new"], bool(c.get("masked"))),
                           "sources": f"{c['old_source'] or '—'} → {c['new_source'] or '—'}"} for c in s["changes"]]}
                for s in out["affected_services"]]
    return {"diff": diff, "services": services}


