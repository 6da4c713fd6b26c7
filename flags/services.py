"""Flag writes: the one way to create, change, delete or import flags and segments.

Each write validates with the engine's strict validators (a malformed strategy,
constraint or variant is refused with a clear message), bumps versions, records
the history actor, writes a ``flag`` event in the same transaction and bumps the
tenant's flag generation after commit so every process recompiles.
"""
from __future__ import annotations

import json
import time
from typing import Any

from django.core.cache import cache
from django.db import IntegrityError, transaction

from core.audit import set_actor
from core.api.strict import refuse_unknown
from core.errors import Conflict, NotFound, ValidationFailed
from core.jsonvalue import JSON_MAX_DEPTH, validate_json_value
from events.services import event_record
from tenants.models import Environment, Tenant

from .engine import EngineError, compile_state, validate_feature, validate_segment
from .models import Flag, FlagEnvironment, Segment, flag_name_problem
from .selectors import forget_tenant, generation_key

_UNSET: Any = object()


def _bump(tenant_id: int) -> None:
    def bump() -> None:
        from core import invalidation

        forget_tenant(tenant_id)
        cache.set(generation_key(tenant_id), str(time.time_ns()), None)
        invalidation.invalidate(generation_key(tenant_id))

    transaction.on_commit(bump)


def _rollout_strategy(flag_name: str, percentage: float) -> dict:
    return {
        "name": "flexibleRollout",
        "parameters": {"rollout": _fmt(percentage), "stickiness": "default", "groupId": flag_name},
        "constraints": [],
    }


def _fmt(percentage: float) -> str:
    return str(int(percentage)) if float(percentage).is_integer() else str(percentage)


def _check_percentage(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise ValidationFailed("rollout_percentage must be a number from 0 to 100", details={"rollout_percentage": [str(value)]})
    return float(value)


def _check_json(*, strategies: Any = None, variants: Any = None, dependencies: Any = None) -> None:
    """The stored-JSON rule (core.jsonvalue) for what a flag stores, a JSON
    variant payload (a string parsed when evaluated) included."""
    validate_json_value(strategies, what="strategies")
    validate_json_value(variants, what="variants")
    validate_json_value(dependencies, what="dependencies")
    listed = strategies if isinstance(strategies, list) else []
    variant_lists = [variants] + [s.get("variants") for s in listed if isinstance(s, dict)]
    for items in variant_lists:
        for v in items if isinstance(items, list) else []:
            payload = v.get("payload") if isinstance(v, dict) else None
            if isinstance(payload, dict) and payload.get("type") == "json" and isinstance(payload.get("value"), str):
                try:
                    parsed = json.loads(payload["value"])
                except RecursionError:
                    raise ValidationFailed(f"variant '{v.get('name')}' payload is nested deeper than the limit of "
                                           f"{JSON_MAX_DEPTH} levels", code="json_too_deep") from None
                except ValueError:
                    continue  # not JSON: evaluated as the string it is
                validate_json_value(parsed, what=f"variant '{v.get('name')}' payload")


def _validate(flag: Flag, strategies: list | None, segment_ids: set) -> None:
    _check_json(strategies=strategies, variants=flag.variants, dependencies=flag.dependencies)
    try:
        validate_feature(
            {
                "name": flag.name,
                "enabled": True,
                "strategies": strategies or [],
                "variants": flag.variants or [],
                "dependencies": flag.dependencies or [],
            },
            segment_ids=segment_ids,
        )
    except EngineError as exc:
        raise ValidationFailed(str(exc), code="invalid_flag") from exc
    for s in strategies or []:
        for sid in s.get("segments") or []:
            if sid not in segment_ids:
                raise ValidationFailed(f"strategy '{s.get('name')}' names segment {sid!r}, which this tenant does not have", code="invalid_flag")


def _segment_ids(tenant_id: int) -> set:
    return set(Segment.objects.filter(tenant_id=tenant_id).values_list("pk", flat=True))


def _announce(flag: Flag, *, action: str, actor: str, environment: str = "", data: dict | None = None) -> None:
    event_record(
        tenant=flag.tenant, resource_type="flag", action=action, actor=actor, key=flag.name,
        environment=environment, version=flag.version, data=data or {"id": flag.pk},
    )
    _bump(flag.tenant_id)


def flag_create(
    *,
    tenant: Tenant,
    name: str,
    environment: Environment | None = None,
    is_enabled: bool = False,
    rollout_percentage: float | None = None,
    strategies: list | None = None,
    description: str = "",
    kind: str = "boolean",
    variants: list | None = None,
    dependencies: list | None = None,
    actor: str,
    user_id: int | None = None,
) -> Flag:
    """Create a flag; with an environment, its state there (the ``is_enabled``/``rollout_percentage`` shorthand, or strategies)."""
    problem = flag_name_problem(name)
    if problem:
        raise ValidationFailed(problem, details={"name": [problem]})
    flag = Flag(tenant=tenant, name=name, description=description or "", kind=kind, variants=variants or [],
                dependencies=dependencies or [], default_environment=environment)
    if rollout_percentage is not None:
        strategies = [_rollout_strategy(name, _check_percentage(rollout_percentage))]
    _validate(flag, strategies, _segment_ids(tenant.pk))
    try:
        with transaction.atomic():
            set_actor(flag, actor, user_id=user_id)
            flag.save()
            if environment is not None:
                fe = FlagEnvironment(flag=flag, environment=environment, enabled=is_enabled, strategies=strategies or [])
                set_actor(fe, actor, user_id=user_id)
                fe.save()
            _announce(flag, action="created", actor=actor, environment=environment.slug if environment else "",
                      data={"id": flag.pk, "enabled": is_enabled, "rollout_percentage": rollout_percentage})
    except IntegrityError as exc:
        raise Conflict(f"flag '{name}' already exists in this tenant") from exc
    return flag


def flag_update(
    *,
    flag: Flag,
    environment: Environment | None = None,
    is_enabled: bool | None = None,
    rollout_percentage: float | None = None,
    strategies: list | None = None,
    description: str | None = None,
    variants: list | None = None,
    dependencies: list | None = None,
    kind: str | None = None,
    expected_version: int | None = None,
    actor: str,
    user_id: int | None = None,
) -> Flag:
    """Change a flag and/or its state in one environment (default: the flag's own).

    ``rollout_percentage`` alone replaces the environment's strategies with one
    ``flexibleRollout`` at that percentage (a gradual rollout raised step by step).
    """
    env = environment or flag.default_environment
    touches_state = is_enabled is not None or rollout_percentage is not None or strategies is not None
    if touches_state and env is None:
        raise ValidationFailed("name an environment: this flag has none yet", details={"environment": ["required"]})
    if rollout_percentage is not None:
        strategies = [_rollout_strategy(flag.name, _check_percentage(rollout_percentage))]
    if description is not None:
        flag.description = description
    if variants is not None:
        flag.variants = variants
    if dependencies is not None:
        flag.dependencies = dependencies
    if kind is not None:
        flag.kind = kind
    with transaction.atomic():
        current = Flag.objects.select_for_update().filter(pk=flag.pk).values_list("version", flat=True).first()
        if current is None:
            raise NotFound("flag not found")
        if expected_version is not None and current != expected_version:
            from core.errors import StaleVersion

            raise StaleVersion(f"flag is at version {current}, not {expected_version}", details={"current_version": current})
        fe = None
        if touches_state:
            fe = FlagEnvironment.objects.filter(flag=flag, environment=env).first() or FlagEnvironment(
                flag=flag, environment=env, strategies=[]
            )
            if is_enabled is not None:
                fe.enabled = is_enabled
            if strategies is not None:
                fe.strategies = strategies
        _validate(flag, fe.strategies if fe else [], _segment_ids(flag.tenant_id))
        flag.version = current + 1
        set_actor(flag, actor, user_id=user_id)
        flag.save()
        if fe is not None:
            if fe.pk:
                fe.version += 1
            set_actor(fe, actor, user_id=user_id)
            fe.save()
        _announce(
            flag, action="updated", actor=actor, environment=env.slug if env and touches_state else "",
            data={"id": flag.pk, "enabled": fe.enabled if fe else None,
                  "rollout_percentage": fe.rollout_percentage if fe else None},
        )
    return flag


def flag_delete(*, flag: Flag, actor: str, user_id: int | None = None) -> None:
    with transaction.atomic():
        _announce(flag, action="deleted", actor=actor)
        set_actor(flag, actor, user_id=user_id)
        flag.delete()


def flags_bulk_set(
    *, flags: list[Flag], environment: Environment, is_enabled: bool | None = None,
    rollout_percentage: float | None = None, actor: str, user_id: int | None = None,
) -> int:
    """The admin's bulk actions: enable, disable or set the rollout of many flags, all or nothing."""
    with transaction.atomic():
        for flag in flags:
            flag_update(flag=flag, environment=environment, is_enabled=is_enabled,
                        rollout_percentage=rollout_percentage, actor=actor, user_id=user_id)
    return len(flags)


def segment_set(*, tenant: Tenant, name: str, constraints: list, description: str = "", actor: str,
                user_id: int | None = None) -> Segment:
    validate_json_value(constraints, what="constraints")
    try:
        validate_segment({"id": 0, "constraints": constraints})
    except EngineError as exc:
        raise ValidationFailed(f"segment '{name}': {exc}", code="invalid_segment") from exc
    with transaction.atomic():
        seg = Segment.objects.filter(tenant=tenant, name=name).first() or Segment(tenant=tenant, name=name)
        seg.constraints, seg.description = constraints, description or seg.description
        set_actor(seg, actor, user_id=user_id)
        seg.save()
        event_record(tenant=tenant, resource_type="segment", action="updated", actor=actor, key=name)
        _bump(tenant.pk)
    return seg


def segment_delete(*, segment: Segment, actor: str, user_id: int | None = None) -> None:
    """Delete a segment that no flag state uses.

    Refused (``ValidationFailed``, nothing changed) while a strategy of any flag
    state names it; the message lists them (``flag@environment``). Dropping the
    segment from those strategies instead would silently widen who gets the
    flag, so the operator edits those strategies first. Otherwise: a
    ``segment.deleted`` event, the audit actor, and the tenant's flag generation
    bumped after commit so every process recompiles without it.
    """
    with transaction.atomic():
        seg = Segment.objects.select_for_update().select_related("tenant").filter(pk=segment.pk).first()
        if seg is None:
            raise NotFound("segment not found")
        users = sorted(
            f"{fe.flag.name}@{fe.environment.slug}"
            for fe in FlagEnvironment.objects.filter(flag__tenant_id=seg.tenant_id).select_related("flag", "environment")
            if any(seg.pk in (s.get("segments") or []) for s in fe.strategies or [] if isinstance(s, dict))
        )
        if users:
            raise ValidationFailed(
                f"segment '{seg.name}' is used by {len(users)} flag state(s): {', '.join(users[:10])}"
                + (" ..." if len(users) > 10 else "") + "; remove it from their strategies first",
                details={"used_by": users}, code="segment_in_use",
            )
        event_record(tenant=seg.tenant, resource_type="segment", action="deleted", actor=actor, key=seg.name,
                     data={"id": seg.pk})
        set_actor(seg, actor, user_id=user_id)
        seg.delete()
        _bump(seg.tenant_id)


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
    ``environment``. The whole document is checked before anything is written
    and the error names the first thing that cannot be taken. Unknown
    constraint operators are kept: they evaluate to false, as in Unleash.
    """
    if not isinstance(document, dict) or not isinstance(document.get("features", []), list):
        raise ValidationFailed("the document must be an object with a 'features' list", code="invalid_import")
    refuse_unknown(document, UNLEASH_DOCUMENT_FIELDS)
    for raw in document.get("segments") or []:
        validate_json_value(raw.get("constraints") if isinstance(raw, dict) else raw, what="constraints")
    for raw in document["features"] if "features" in document else []:
        if isinstance(raw, dict):
            _check_json(strategies=raw.get("strategies"), variants=raw.get("variants"),
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
        for raw in document.get("segments") or []:
            name = str(raw.get("name") or f"segment-{raw['id']}")
            seg = Segment.objects.filter(tenant=tenant, name=name).first() or Segment(tenant=tenant, name=name)
            seg.constraints = raw.get("constraints") or []
            seg.description = raw.get("description") or ""
            set_actor(seg, actor, user_id=user_id)
            seg.save()
            id_map[raw["id"]] = seg.pk
        for raw in document.get("features", []):
            strategies = []
            for s in raw.get("strategies") or []:
                s = dict(s)
                if s.get("segments"):
                    s["segments"] = [id_map.get(sid, sid) for sid in s["segments"]]
                strategies.append(s)
            flag = Flag.objects.filter(tenant=tenant, name=raw["name"]).first()
            if flag is None:
                flag = Flag(tenant=tenant, name=raw["name"], default_environment=environment)
                created += 1
            else:
                flag.version += 1
                updated += 1
            flag.description = raw.get("description") or ""
            flag.variants = raw.get("variants") or []
            flag.dependencies = raw.get("dependencies") or []
            set_actor(flag, actor, user_id=user_id)
            flag.save()
            fe = FlagEnvironment.objects.filter(flag=flag, environment=environment).first() or FlagEnvironment(
                flag=flag, environment=environment
            )
            fe.enabled, fe.strategies = bool(raw.get("enabled", False)), strategies
            set_actor(fe, actor, user_id=user_id)
            fe.save()
        event_record(
            tenant=tenant, resource_type="flag", action="imported", actor=actor, environment=environment.slug,
            data={"created": created, "updated": updated, "segments": len(id_map)},
        )
        _bump(tenant.pk)
    return {"created": created, "updated": updated, "segments": len(id_map)}
