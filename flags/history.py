"""A flag's history as operators read it: each version of the flag with the state of
every environment at that version (enabled, strategies, rollout, variants), and what
changed from the version before.

A flag and its per-environment states are separate historical tables. Every write of a
state goes through ``flags.services.flags`` (create, update, revert), which saves the
flag (a new flag version) before the state in the same transaction; so the states of
version N are the latest state rows written before version N+1's flag row. Comparing
history dates is exact for that order: rows of one write are saved one after the other.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.errors import NotFound
from tenants.models import Environment

from .models import Flag, FlagEnvironment

FLAG_FIELDS = ("description", "kind", "variants", "dependencies")
_TYPES = {"+": "created", "~": "changed", "-": "deleted"}


@dataclass
class FlagVersion:
    history_id: int
    version: int
    date: datetime
    type: str
    actor: str
    user: str | None
    reason: str
    fields: dict[str, Any]
    # environment id → {"enabled", "strategies"}: the states at this version
    states: dict[int, dict[str, Any]]
    environments: dict[int, str]  # environment id → slug
    changes: list[dict[str, str]] = field(default_factory=list)


def rollout_of(strategies: list) -> float | None:
    """The rollout percentage the strategies amount to (None: more than one number can say)."""
    return FlagEnvironment(strategies=strategies).rollout_percentage


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=False)


def rollout_text(strategies: list | None) -> str:
    """"50%", "custom strategies", or "—" for no state."""
    if strategies is None:
        return "—"
    pct = rollout_of(strategies)
    return "custom strategies" if pct is None else f"{pct:g}%"


def _changes(before: FlagVersion | None, now: FlagVersion) -> list[dict[str, str]]:
    out = []
    for name in FLAG_FIELDS:
        old = before.fields[name] if before else None
        if before is None and now.fields[name] in ("", [], None):
            continue
        if old != now.fields[name]:
            out.append({"field": name, "old": "—" if before is None else _text(old), "new": _text(now.fields[name])})
    env_ids = sorted(set(now.states) | set(before.states if before else {}), key=lambda i: now.environments.get(i, ""))
    for env_id in env_ids:
        slug = now.environments.get(env_id, f"environment {env_id}")
        old = (before.states if before else {}).get(env_id)
        new = now.states.get(env_id)
        if old == new:
            continue
        old_enabled = None if old is None else old["enabled"]
        new_enabled = None if new is None else new["enabled"]
        if old_enabled != new_enabled:
            out.append({"field": f"{slug}: enabled", "old": "—" if old is None else _text(old_enabled),
                        "new": "—" if new is None else _text(new_enabled)})
        old_strategies = None if old is None else old["strategies"]
        new_strategies = None if new is None else new["strategies"]
        if old_strategies != new_strategies:
            if rollout_text(old_strategies) != rollout_text(new_strategies):
                out.append({"field": f"{slug}: rollout", "old": rollout_text(old_strategies),
                            "new": rollout_text(new_strategies)})
            out.append({"field": f"{slug}: strategies", "old": "—" if old is None else _text(old_strategies),
                        "new": "—" if new is None else _text(new_strategies)})
    return out


def flag_versions(*, flag_id: int) -> list[FlagVersion]:
    """Every version of a flag, oldest first, each with its environments' states and
    its changes from the version before. Three queries."""
    records = list(Flag.history.filter(id=flag_id).select_related("history_user").order_by("history_id"))
    states = list(FlagEnvironment.history.filter(flag_id=flag_id).order_by("history_date", "history_id"))
    slugs = dict(Environment.objects.values_list("pk", "slug"))
    out: list[FlagVersion] = []
    snapshot: dict[int, dict[str, Any]] = {}
    i = 0
    for n, rec in enumerate(records):
        boundary = records[n + 1].history_date if n + 1 < len(records) else None
        while i < len(states) and (boundary is None or states[i].history_date < boundary):
            row = states[i]
            i += 1
            if row.history_type == "-":
                snapshot.pop(row.environment_id, None)
            else:
                snapshot[row.environment_id] = {"enabled": row.enabled, "strategies": row.strategies}
        version = FlagVersion(
            history_id=rec.history_id, version=rec.version, date=rec.history_date,
            type=_TYPES.get(rec.history_type, rec.history_type), actor=rec.history_actor,
            user=rec.history_user.get_username() if rec.history_user_id else None,
            reason=rec.history_change_reason or "", fields={name: getattr(rec, name) for name in FLAG_FIELDS},
            states={env_id: dict(s) for env_id, s in snapshot.items() if env_id in slugs}, environments=slugs,
        )
        version.changes = _changes(out[-1] if out else None, version)
        out.append(version)
    return out


def flag_version(*, flag_id: int, history_id: int) -> FlagVersion:
    """One version of :func:`flag_versions` by its history id (NotFound: not this flag's)."""
    for version in flag_versions(flag_id=flag_id):
        if version.history_id == history_id:
            return version
    raise NotFound(f"no history record {history_id} for flag {flag_id}")
