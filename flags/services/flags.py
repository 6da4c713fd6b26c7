"""Flag writes: create, update (the ``is_enabled``/``rollout_percentage`` shorthand, or strategies), delete, bulk set."""
from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from core.audit import current_reason, set_actor
from core.errors import Conflict, NotFound, StaleVersion, ValidationFailed
from events.services import event_record
from tenants.guard import write_check
from tenants.models import Environment, Tenant

from ..history import flag_version
from ..models import Flag, FlagEnvironment, flag_name_problem
from ..validation import flag_validate, tenant_segment_ids
from .common import generation_bump


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


def _announce(flag: Flag, *, action: str, actor: str, environment: str = "", data: dict | None = None) -> None:
    # Caches first: after commit, callbacks run in the order they were registered,
    # and a listener woken by the event must read the new state, never the cached one.
    generation_bump(flag.tenant_id)
    event_record(
        tenant=flag.tenant, resource_type="flag", action=action, actor=actor, key=flag.name,
        environment=environment, version=flag.version, data=data or {"id": flag.pk},
    )


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
    strict: bool = True,
) -> Flag:
    """Create a flag; with an environment, its state there (the ``is_enabled``/``rollout_percentage`` shorthand, or strategies).

    ``strict=False`` (the Unleash import) keeps unknown constraint operators
    (see :mod:`flags.validation`)."""
    write_check(tenant=tenant, environment=environment, resource="flag", action="create", key=name,
                actor=actor, user_id=user_id)
    problem = flag_name_problem(name)
    if problem:
        raise ValidationFailed(problem, details={"name": [problem]})
    flag = Flag(tenant=tenant, name=name, description=description or "", kind=kind, variants=variants or [],
                dependencies=dependencies or [], default_environment=environment)
    if rollout_percentage is not None:
        strategies = [_rollout_strategy(name, _check_percentage(rollout_percentage))]
    flag_validate(name=name, strategies=strategies, variants=flag.variants, dependencies=flag.dependencies,
                  segment_ids=tenant_segment_ids(tenant.pk), strict=strict)
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
    strict: bool = True,
) -> Flag:
    """Change a flag and/or its state in one environment (default: the flag's own).

    ``rollout_percentage`` alone replaces the environment's strategies with one
    ``flexibleRollout`` at that percentage (a gradual rollout raised step by step).
    """
    env = environment or flag.default_environment
    touches_state = is_enabled is not None or rollout_percentage is not None or strategies is not None
    touches_flag = any(v is not None for v in (variants, dependencies, kind))
    # Variants, dependencies and kind reach every environment, a state its own; a
    # description alone changes no evaluation ("describe").
    write_check(tenant=flag.tenant, environment=env if touches_state and not touches_flag else None,
                resource="flag", action="update" if touches_flag or touches_state else "describe",
                key=flag.name, actor=actor, user_id=user_id)
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
        flag_validate(name=flag.name, strategies=fe.strategies if fe else [], variants=flag.variants,
                      dependencies=flag.dependencies, segment_ids=tenant_segment_ids(flag.tenant_id), strict=strict)
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


def flag_revert(*, flag: Flag, history_id: int, actor: str, user_id: int | None = None) -> Flag:
    """Put a flag back to an earlier version of its history: its description, kind,
    variants and dependencies, and its state in every environment as it was then
    (an environment the flag had no state in then is switched off, with no strategies).

    One transaction, validated as a write is (a segment deleted since: refused, nothing
    written); a new flag version with the reason "revert to version N", and one
    ``flag.updated`` event per environment whose state changes (one for the flag when
    none does), each with ``data["reverted_to"]``.
    """
    target = flag_version(flag_id=flag.pk, history_id=history_id)
    with transaction.atomic():
        current = Flag.objects.select_for_update().filter(pk=flag.pk).first()
        if current is None:
            raise NotFound("flag not found")
        for name, value in target.fields.items():
            setattr(current, name, value)
        existing = {fe.environment_id: fe for fe in FlagEnvironment.objects.filter(flag=current).select_related("environment")}
        wanted = dict(target.states)
        for env_id in existing.keys() - wanted.keys():
            wanted[env_id] = {"enabled": False, "strategies": []}
        segment_ids = tenant_segment_ids(current.tenant_id)
        flag_validate(name=current.name, strategies=None, variants=current.variants,
                      dependencies=current.dependencies, segment_ids=segment_ids)
        for state in wanted.values():
            flag_validate(name=current.name, strategies=state["strategies"], variants=None, dependencies=None,
                          segment_ids=segment_ids)
        # The gate, for what the revert reaches: every environment when the flag's own
        # fields change, else each environment whose state changes.
        fields_change = any(getattr(flag, name) != value for name, value in target.fields.items())
        reached = [None] if fields_change else [
            env_id for env_id, state in wanted.items()
            if env_id not in existing or (existing[env_id].enabled, existing[env_id].strategies)
            != (state["enabled"], state["strategies"])
        ]
        gate_envs = {e.pk: e for e in Environment.objects.filter(pk__in=[r for r in reached if r])}
        for env_id in reached:
            write_check(tenant=current.tenant, environment=gate_envs.get(env_id), resource="flag", action="update",
                        key=current.name, actor=actor, user_id=user_id)
        reason = f"revert to version {target.version}" + (f": {current_reason()}" if current_reason() else "")
        current.version += 1
        set_actor(current, actor, user_id=user_id, reason=reason)
        current.save()
        environments = {e.pk: e for e in Environment.objects.filter(pk__in=wanted.keys())}
        changed = []
        for env_id, state in sorted(wanted.items()):
            fe = existing.get(env_id)
            if fe is not None and (fe.enabled, fe.strategies) == (state["enabled"], state["strategies"]):
                continue
            if fe is None:
                fe = FlagEnvironment(flag=current, environment=environments[env_id])
            else:
                fe.version += 1
            fe.enabled, fe.strategies = state["enabled"], state["strategies"]
            set_actor(fe, actor, user_id=user_id, reason=reason)
            fe.save()
            changed.append(fe)
        for fe in changed or [None]:
            _announce(current, action="updated", actor=actor, environment=fe.environment.slug if fe else "",
                      data={"id": current.pk, "reverted_to": target.version,
                            "enabled": fe.enabled if fe else None,
                            "rollout_percentage": fe.rollout_percentage if fe else None})
    return current


def flag_delete(*, flag: Flag, actor: str, user_id: int | None = None) -> None:
    write_check(tenant=flag.tenant, environment=None, resource="flag", action="delete", key=flag.name,
                actor=actor, user_id=user_id)
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
