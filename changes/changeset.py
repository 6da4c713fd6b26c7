"""The changes a request carries: their validation, their targets, their diff and
who is affected (API.md's change format).

``{"type": "config.set", "key", "service_name", "value", "is_secret"}``,
``{"type": "config.delete", "key", "service_name"}``, ``{"type": "flag.set",
"name", ...}`` with the fields of the flag route's ``PATCH``, ``{"type":
"schema.set", "key", "schema", "metadata"?, "required"?, "default_value"?}`` (the
schema route's body: a replacement) and ``{"type": "schema.delete", "key"}``.
Every change targets the request's tenant and environment; a schema is global,
so its change is seen (diff, affected services) from the request's tenant and
environment, and proposing one needs the right to write schemas directly
(docs/change-requests.md).
"""
from __future__ import annotations

import json
from typing import Any

from django.db.models import Q
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from core.api.strict import StrictSerializer
from core.errors import ValidationFailed
from core.jsonvalue import validate_json_value
from flags.api.views.flags import FlagUpdateSerializer
from flags.models import Flag, FlagEnvironment
from registry.models import Service
from tenants.api.serializers import SchemaSerializer
from tenants.compare import same_json
from tenants.models import ConfigEntry, ConfigSchema, Environment, Tenant, key_validator, service_validator
from tenants.schemas import config_validate, schema_validate
from tenants.selectors import scope_rank

MAX_CHANGES = 200
CONFIG_SET, CONFIG_DELETE, FLAG_SET = "config.set", "config.delete", "flag.set"
SCHEMA_SET, SCHEMA_DELETE = "schema.set", "schema.delete"
SCHEMA_TYPES = (SCHEMA_SET, SCHEMA_DELETE)
SCHEMA_FIELDS = ("schema", "metadata", "required", "default_value")
FLAG_STATE_FIELDS = ("is_enabled", "rollout_percentage", "strategies")
FLAG_FIELDS = ("description", "kind", "variants", "dependencies")


class _ConfigTarget(StrictSerializer):
    type = serializers.ChoiceField(choices=[CONFIG_SET, CONFIG_DELETE])
    key = serializers.CharField(max_length=200, validators=[key_validator])
    service_name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="",
                                         validators=[service_validator])


class ConfigSetChange(_ConfigTarget):
    value = serializers.JSONField(allow_null=True)
    is_secret = serializers.BooleanField(required=False, allow_null=True, default=None)

    def to_internal_value(self, data):
        # A value that is JSON null is a value: DRF's JSONField would take a missing one for null too.
        if isinstance(data, dict) and "value" not in data:
            raise ValidationError({"value": ["This field is required."]})
        return super().to_internal_value(data)


class ConfigDeleteChange(_ConfigTarget):
    pass


class FlagSetChange(FlagUpdateSerializer):
    """The flag route's PATCH body, naming the flag; the request names the environment."""

    type = serializers.ChoiceField(choices=[FLAG_SET])
    name = serializers.CharField(max_length=200)
    environment = None
    version = None


class SchemaSetChange(SchemaSerializer):
    """The schema route's body (a full replacement: metadata, required and the
    default as given, else none), without ``version``: the request records it."""

    type = serializers.ChoiceField(choices=[SCHEMA_SET])
    version = None

    def to_internal_value(self, data):
        if isinstance(data, dict) and "schema" not in data:
            raise ValidationError({"schema": ["This field is required."]})
        return super().to_internal_value(data)


class SchemaDeleteChange(StrictSerializer):
    type = serializers.ChoiceField(choices=[SCHEMA_DELETE])
    key = serializers.CharField(max_length=200, validators=[key_validator])


_SERIALIZERS = {CONFIG_SET: ConfigSetChange, CONFIG_DELETE: ConfigDeleteChange, FLAG_SET: FlagSetChange,
                SCHEMA_SET: SchemaSetChange, SCHEMA_DELETE: SchemaDeleteChange}


def has_schema_changes(changes: Any) -> bool:
    """Whether ``changes`` (as given, unvalidated) hold a schema change: proposing
    or applying one needs the right to write schemas directly."""
    return any(isinstance(c, dict) and c.get("type") in SCHEMA_TYPES for c in changes or [])



def target_of(change: dict) -> tuple:
    """What a change writes: one config scope, one flag (its state and/or itself), or one key's schema."""
    if change["type"] == FLAG_SET:
        return ("flag", change["name"])
    if change["type"] in SCHEMA_TYPES:
        return ("schema", change["key"])
    return ("config", change["key"], change.get("service_name") or "")


def changes_validate(*, tenant: Tenant, environment: Environment, changes: Any) -> tuple[list[dict], dict[str, Any]]:
    """Check a request's changes (400 naming the change's index on any problem) and
    split out the secrets: returns the changes as stored (a secret's ``value`` null)
    and the secret values by index."""
    if not isinstance(changes, list) or not changes:
        raise ValidationFailed("changes: a non-empty list", details={"changes": ["a non-empty list of changes"]})
    if len(changes) > MAX_CHANGES:
        raise ValidationFailed(f"at most {MAX_CHANGES} changes in one request", details={"changes": ["too many"]})
    stored, secrets, errors, seen = [], {}, {}, {}
    for index, raw in enumerate(changes):
        kind = raw.get("type") if isinstance(raw, dict) else None
        if kind not in _SERIALIZERS:
            errors[str(index)] = {"type": [f"one of {', '.join(_SERIALIZERS)}"]}
            continue
        ser = _SERIALIZERS[kind](data=raw)
        if not ser.is_valid():
            errors[str(index)] = ser.errors
            continue
        change = {k: v for k, v in ser.validated_data.items() if v is not None or k == "value"}
        if kind == SCHEMA_SET:
            change.setdefault("default_value", None)
        if kind == FLAG_SET:
            if "rollout_percentage" in change and "strategies" in change:
                errors[str(index)] = {"strategies": ["give rollout_percentage or strategies, not both"]}
                continue
            if len(change) == 2:
                errors[str(index)] = {"name": ["a flag.set changes at least one field"]}
                continue
        target = target_of(change)
        if target in seen:
            errors[str(index)] = {"type": [f"the same target as change {seen[target]}: one change per target"]}
            continue
        seen[target] = index
        try:
            if kind == CONFIG_SET:
                validate_json_value(change["value"], what=f"value of '{change['key']}'")
                if change.get("is_secret") is None:
                    current = config_target(tenant, environment, change)
                    change["is_secret"] = bool(current and current.is_secret)
                config_validate(key=change["key"], value=change["value"], is_secret=change["is_secret"])
                if change["is_secret"]:
                    secrets[str(index)] = change["value"]
                    change["value"] = None
            elif kind == SCHEMA_SET:
                # As schema_set checks it: the schema, the metadata, the default, the key's values now.
                schema_validate(key=change["key"], schema=change["schema"], metadata=change.get("metadata"),
                                default_value=change["default_value"])
        except ValidationFailed as exc:
            field = (getattr(exc, "field", None) or "schema") if kind == SCHEMA_SET else "value"
            errors[str(index)] = {field: [exc.message], **({"details": exc.details} if exc.details else {})}
            continue
        stored.append(change)
    if errors:
        raise ValidationFailed("some changes are invalid", details={"changes": errors})
    return stored, secrets


def config_target(tenant: Tenant, environment: Environment, change: dict) -> ConfigEntry | None:
    """The entry a config change writes (tenant + environment [+ service]), if it exists."""
    return ConfigEntry.objects.filter(tenant_id=tenant.pk, environment_id=environment.pk, key=change["key"],
                                      service_name=change.get("service_name") or "").first()


def secrets_made_plain(*, tenant: Tenant, environment: Environment, changes: Any) -> list[str]:
    """Keys of secret entries that ``changes`` would make plain (``"is_secret": false``):
    proposing that needs the right to read secrets, as a direct write does."""
    keys = []
    for change in changes if isinstance(changes, list) else []:
        if (isinstance(change, dict) and change.get("type") == CONFIG_SET and change.get("is_secret") is False
                and isinstance(change.get("key"), str) and isinstance(change.get("service_name", ""), str)):
            entry = config_target(tenant, environment, change)
            if entry is not None and entry.is_secret:
                keys.append(change["key"])
    return keys


def schema_target(change: dict) -> ConfigSchema | None:
    """The schema a schema change writes (global: one per key), if it exists."""
    return ConfigSchema.objects.filter(key=change["key"]).first()


def _schema_view(schema: ConfigSchema | None) -> dict | None:
    if schema is None:
        return None
    return {"schema": schema.schema, "metadata": schema.metadata, "required": schema.required,
            "default_value": schema.default_value}


def flag_target(tenant: Tenant, environment: Environment, change: dict) -> tuple[Flag | None, FlagEnvironment | None]:
    flag = Flag.objects.filter(tenant_id=tenant.pk, name=change["name"]).first()
    state = FlagEnvironment.objects.filter(flag=flag, environment=environment).first() if flag else None
    return flag, state


def base_of(*, tenant: Tenant, environment: Environment, changes: list[dict]) -> list[dict]:
    """Each target's version now (None: absent): what applying compares against."""
    out = []
    for change in changes:
        if change["type"] == FLAG_SET:
            flag, state = flag_target(tenant, environment, change)
            out.append({"flag": flag.version if flag else None, "state": state.version if state else None})
        elif change["type"] in SCHEMA_TYPES:
            schema = schema_target(change)
            out.append({"version": schema.version if schema else None})
        else:
            entry = config_target(tenant, environment, change)
            out.append({"version": entry.version if entry else None})
    return out


def conflicts_of(*, tenant: Tenant, environment: Environment, changes: list[dict], base: list[dict]) -> list[dict]:
    """The changes whose target changed since ``base`` was taken (a flag's own
    version counts only when the change touches the flag itself, not only its state)."""
    now = base_of(tenant=tenant, environment=environment, changes=changes)
    out = []
    for index, (change, was, is_) in enumerate(zip(changes, base, now, strict=True)):
        if change["type"] == FLAG_SET:
            changed = was.get("state") != is_["state"] or (
                any(f in change for f in FLAG_FIELDS) and was.get("flag") != is_["flag"])
            if was.get("flag") is None and is_["flag"] is not None:
                changed = True
        else:
            changed = was.get("version") != is_["version"]
        if not changed and change["type"] in (CONFIG_DELETE, SCHEMA_DELETE) and is_.get("version") is None:
            changed = True
        if changed:
            out.append({"index": index, "target": _label(change), "opened_at": was, "now": is_})
    return out


def _label(change: dict) -> str:
    if change["type"] == FLAG_SET:
        return f"flag {change['name']}"
    if change["type"] in SCHEMA_TYPES:
        return f"schema {change['key']}"
    return f"config {change['key']}" + (f" ({change['service_name']})" if change.get("service_name") else "")


def _flag_view(flag: Flag | None, state: FlagEnvironment | None, fields: list[str]) -> dict:
    out: dict[str, Any] = {}
    for name in fields:
        if name == "is_enabled":
            out[name] = state.enabled if state else None
        elif name == "rollout_percentage":
            out[name] = state.rollout_percentage if state else None
        elif name == "strategies":
            out[name] = state.strategies if state else None
        else:
            out[name] = getattr(flag, name) if flag else None
    return out


def diff_of(*, tenant: Tenant, environment: Environment, changes: list[dict], secrets: dict,
            reveal: bool = False) -> list[dict]:
    """Per change, the value now and the value it writes; secrets masked unless ``reveal``."""
    out = []
    for index, change in enumerate(changes):
        if change["type"] == FLAG_SET:
            flag, state = flag_target(tenant, environment, change)
            fields = [f for f in (*FLAG_STATE_FIELDS, *FLAG_FIELDS) if f in change]
            out.append({"type": FLAG_SET, "name": change["name"], "exists": flag is not None,
                        "old": _flag_view(flag, state, fields), "new": {f: change[f] for f in fields}})
            continue
        if change["type"] in SCHEMA_TYPES:
            schema = schema_target(change)
            new = None if change["type"] == SCHEMA_DELETE else {
                "schema": change["schema"], "metadata": change.get("metadata") or {},
                "required": bool(change.get("required")), "default_value": change.get("default_value")}
            out.append({"type": change["type"], "key": change["key"], "exists": schema is not None,
                        "old": _schema_view(schema), "new": new})
            continue
        entry = config_target(tenant, environment, change)
        secret = bool(change.get("is_secret")) or bool(entry and entry.is_secret)
        masked = secret and not reveal
        row = {"type": change["type"], "key": change["key"], "service_name": change.get("service_name") or "",
               "exists": entry is not None, "is_secret": secret}
        old = entry.plain_value if entry else None
        new = None if change["type"] == CONFIG_DELETE else secrets.get(str(index), change.get("value"))
        if masked:
            row.update(old=None, new=None, masked=True)
        else:
            row.update(old=old, new=new)
        out.append(row)
    return out


def known_services(*, tenant: Tenant) -> list[str]:
    """Services a change may reach: those named by config entries the tenant sees, and the registry's."""
    names = set(ConfigEntry.objects.filter(tenant_id=tenant.pk).exclude(service_name="").values_list("service_name", flat=True))
    names |= set(ConfigEntry.objects.filter(tenant__isnull=True).exclude(service_name="").values_list("service_name", flat=True))
    names |= set(Service.objects.filter(tenant_id=tenant.pk).values_list("name", flat=True))
    return sorted(names)


def _resolve(entries: list[ConfigEntry], overlay: dict[tuple, Any], default: Any, has_default: bool):
    """(value, is_secret, source) of the winner among ``entries`` (rank: tenant >
    environment > service), the request's own scope replaced by ``overlay``
    ({rank: ("set", value, secret) | ("delete",)}); None when nothing holds the key."""
    ranked: dict[int, tuple[Any, bool, str]] = {}
    for e in entries:
        rank = scope_rank(tenant=bool(e.tenant_id), environment=bool(e.environment_id), service=bool(e.service_name))
        ranked[rank] = (e.plain_value, e.is_secret, e.scope_label)
    for rank, op in overlay.items():
        if op[0] == "delete":
            ranked.pop(rank, None)
        else:
            service = rank == scope_rank(tenant=True, environment=True, service=True)
            ranked[rank] = (op[1], op[2], "tenant+environment" + ("+service" if service else ""))
    if ranked:
        return ranked[max(ranked)]
    return (default, False, "default") if has_default else None


def _same_result(before, after) -> bool:
    """Whether two resolutions hold the same value and secrecy (the value as JSON:
    ``1`` and ``true`` differ)."""
    if before is None or after is None:
        return before is after
    return before[1] == after[1] and same_json(before[0], after[0])


def affected_services(*, tenant: Tenant, environment: Environment, changes: list[dict], secrets: dict,
                      reveal: bool = False) -> list[dict]:
    """Per service (and ``""``: a caller naming no service), the resolved values that
    the config and schema changes would change in the request's environment (a
    schema's by its default value: resolution's last scope, where nothing else
    holds the key). One row per key, all of the request's changes to it at once."""
    relevant = [(i, c) for i, c in enumerate(changes) if c["type"] != FLAG_SET]
    if not relevant:
        return []
    keys = list(dict.fromkeys(c["key"] for _, c in relevant))
    # Every scope that can win in this tenant and environment, for every service: one query.
    entries = list(ConfigEntry.objects.filter(key__in=keys)
                   .filter(Q(tenant_id=tenant.pk) | Q(tenant__isnull=True))
                   .filter(Q(environment_id=environment.pk) | Q(environment__isnull=True)))
    schemas = {s.key: s for s in ConfigSchema.objects.filter(key__in=keys)}
    defaults_now = {key: (s.default_value, s.default_value is not None) for key, s in schemas.items()}  # (default, has one)
    defaults_after = dict(defaults_now)
    for _, change in relevant:
        if change["type"] in SCHEMA_TYPES:
            default = change.get("default_value") if change["type"] == SCHEMA_SET else None
            defaults_after[change["key"]] = (default, default is not None)
    out = []
    for service in ["", *known_services(tenant=tenant)]:
        rows = []
        for key in keys:
            overlay: dict[int, tuple] = {}
            for index, change in relevant:
                svc = change.get("service_name") or ""
                if change["key"] != key or change["type"] in SCHEMA_TYPES or (svc and svc != service):
                    continue
                rank = scope_rank(tenant=True, environment=True, service=bool(svc))
                overlay[rank] = ("delete",) if change["type"] == CONFIG_DELETE else (
                    "set", secrets.get(str(index), change.get("value")), bool(change.get("is_secret")))
            seen = [e for e in entries if e.key == key and e.service_name in ("", service)]
            before = _resolve(seen, {}, *defaults_now.get(key, (None, False)))
            after = _resolve(seen, overlay, *defaults_after.get(key, (None, False)))
            if _same_result(before, after):
                continue
            secret = bool((before and before[1]) or (after and after[1]))
            masked = secret and not reveal
            rows.append({
                "key": key,
                "old": None if masked or before is None else before[0],
                "new": None if masked or after is None else after[0],
                "old_source": before[2] if before else None,
                "new_source": after[2] if after else None,
                **({"masked": True} if masked else {}),
            })
        if rows:
            out.append({"service": service or None, "changes": rows})
    return out


def text(value: Any) -> str:
    """A value as the admin shows it."""
    return json.dumps(value, ensure_ascii=False)
