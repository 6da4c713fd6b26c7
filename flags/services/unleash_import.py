"""The Unleash import: a ``/client/features`` document into a tenant, all or nothing,
written through the flag and segment services (their checks, events, history)."""
from __future__ import annotations

from typing import Any

from django.db import transaction

from core.api.strict import refuse_unknown
from core.errors import ChangeRequestRequired, DomainError, Forbidden, ValidationFailed
from core.jsonvalue import validate_json_value
from events.services import event_record
from tenants.models import Environment, Tenant

from ..engine import EngineError, compile_state
from ..models import Flag, Segment, flag_name_problem
from ..validation import NO_SEGMENT, flag_json_check, tenant_segment_ids
from .common import generation_bump
from .flags import flag_create, flag_update
from .segments import segment_set

# The top level of Unleash's /client/features answer. Only the top level is
# checked: features and segments carry many fields of Unleash's own (type, stale,
# impressionData, project, createdAt, ...) that the hub keeps or ignores.
UNLEASH_DOCUMENT_FIELDS = frozenset({"version", "features", "segments", "query", "meta"})


SEGMENT_NAME_MAX = Segment._meta.get_field("name").max_length


def flags_import_unleash(*, tenant: Tenant, environment: Environment, document: Any, actor: str,
                         user_id: int | None = None) -> dict[str, int]:
    """Import an Unleash ``/client/features`` document into a tenant: all or nothing.

    Segments are matched by name (or ``segment-<id>``) and their ids remapped;
    features are created or updated by name, their state written for
    ``environment``, each through :func:`segment_set`, :func:`flag_create` or
    :func:`flag_update` (their checks, events and history), in one transaction.
    The whole document is checked before anything is written and the error names
    the first thing that cannot be taken. Unknown constraint operators are kept,
    and a segment the document names without defining it becomes
    :data:`~flags.validation.NO_SEGMENT`: both evaluate to false, as in Unleash.
    """
    if not isinstance(document, dict) or not isinstance(document.get("features", []), list):
        raise ValidationFailed("the document must be an object with a 'features' list", code="invalid_import")
    refuse_unknown(document, UNLEASH_DOCUMENT_FIELDS)
    for raw in document.get("segments") or []:
        validate_json_value(raw.get("constraints") if isinstance(raw, dict) else raw, what="constraints")
    for raw in document.get("features", []):
        if isinstance(raw, dict):
            flag_json_check(strategies=raw.get("strategies"), variants=raw.get("variants"),
                            dependencies=raw.get("dependencies"))
    try:
        compile_state(document)
    except EngineError as exc:
        raise ValidationFailed(f"cannot import: {exc}", code="invalid_import") from exc
    for index, raw in enumerate(document.get("features") or []):
        problem = flag_name_problem(raw["name"])
        if problem:
            raise ValidationFailed(f"cannot import: feature #{index + 1} ({ascii(raw['name'])[:80]}): {problem}",
                                   code="invalid_import")
    for raw in document.get("segments") or []:
        name = raw.get("name")
        if name is not None and (not isinstance(name, str) or len(name) > SEGMENT_NAME_MAX):
            raise ValidationFailed(f"cannot import: segment {raw['id']!r}: a segment name is a string of at most "
                                   f"{SEGMENT_NAME_MAX} characters", code="invalid_import")
    names = [f.get("name") for f in document.get("features", [])]
    if len(set(names)) != len(names):
        raise ValidationFailed("cannot import: a feature name appears twice", code="invalid_import")
    created = updated = 0
    with transaction.atomic():
        id_map: dict[Any, int] = {}
        own = tenant_segment_ids(tenant.pk)
        for raw in document.get("segments") or []:
            name = str(raw.get("name") or f"segment-{raw['id']}")
            seg = _written(f"segment {raw['id']!r}", segment_set, tenant=tenant, name=name,
                           constraints=raw.get("constraints") or [], description=raw.get("description") or "",
                           actor=actor, user_id=user_id, strict=False)
            id_map[raw["id"]] = seg.pk
        for raw in document.get("features", []):
            strategies = []
            for s in raw.get("strategies") or []:
                s = dict(s)
                if s.get("segments"):
                    s["segments"] = [id_map.get(sid, sid if sid in own else NO_SEGMENT) for sid in s["segments"]]
                strategies.append(s)
            fields = {
                "environment": environment, "is_enabled": bool(raw.get("enabled", False)), "strategies": strategies,
                "description": raw.get("description") or "", "variants": raw.get("variants") or [],
                "dependencies": raw.get("dependencies") or [], "actor": actor, "user_id": user_id, "strict": False,
            }
            flag = Flag.objects.filter(tenant=tenant, name=raw["name"]).first()
            where = f"feature '{raw['name']}'"
            if flag is None:
                _written(where, flag_create, tenant=tenant, name=raw["name"], **fields)
                created += 1
            else:
                _written(where, flag_update, flag=flag, **fields)
                updated += 1
        generation_bump(tenant.pk)  # before the event: see flags.services.flags._announce
        event_record(
            tenant=tenant, resource_type="flag", action="imported", actor=actor, environment=environment.slug,
            data={"created": created, "updated": updated, "segments": len(id_map)},
        )
    return {"created": created, "updated": updated, "segments": len(id_map)}


def _written(where: str, write, **kwargs):
    """One write of the import through its service; a refusal names what was being
    imported (the transaction rolls back everything written before it)."""
    try:
        return write(**kwargs)
    except (ChangeRequestRequired, Forbidden):
        raise  # the write gate's refusals are the caller's, not the document's: their own status and code
    except DomainError as exc:
        raise ValidationFailed(f"cannot import: {where}: {exc.message}", details=exc.details,
                               code="invalid_import") from exc
