"""Import and export of a tenant's configs and flags (JSON or YAML), all or nothing.

Export writes tenant-scope entries (every environment and service) and the
tenant's flags. Secrets are left out unless asked for, and then exported as
Fernet tokens (``{"encrypted": "gAAAA..."}``) readable only by a hub holding
the same keys, or in plain text for a user allowed to reveal them.
Import validates the whole document (every value against its schema, every flag
with the engine) before writing anything, then writes through the services in
one transaction.
"""
from __future__ import annotations

import json
from typing import Any

import yaml
from django.db import transaction

from core.errors import DomainError, ValidationFailed
from core.fields import decrypt_json, encrypt_json
from core.jsonvalue import ENVELOPE_DEPTH, JSON_MAX_DEPTH, validate_json_value
from flags.engine import EngineError
from flags.models import Flag, flag_name_problem
from flags.services.flags import flag_create, flag_update
from flags.validation import flag_validate, tenant_segment_ids
from tenants.models import ConfigEntry, Environment, Tenant
from tenants.schemas import config_validate
from tenants.services.configs import config_set

FORMAT_VERSION = 1


def tenant_export(*, tenant: Tenant, include_secrets: str = "none") -> dict[str, Any]:
    """``include_secrets``: "none" (default), "encrypted" or "plain" (callers check the permission)."""

    configs = []
    for e in ConfigEntry.objects.filter(tenant=tenant).select_related("environment").order_by("key", "id"):
        item: dict[str, Any] = {"key": e.key, "environment": e.environment.slug if e.environment_id else None,
                                "service_name": e.service_name or None, "description": e.description, "is_secret": e.is_secret}
        if e.is_secret:
            if include_secrets == "none":
                continue
            item["value"] = {"encrypted": encrypt_json(e.secret_value)} if include_secrets == "encrypted" else e.secret_value
        else:
            item["value"] = e.value
        configs.append(item)
    flags = []
    for f in Flag.objects.filter(tenant=tenant).prefetch_related("states__environment").order_by("name"):
        flags.append({
            "name": f.name, "description": f.description, "kind": f.kind, "variants": f.variants,
            "dependencies": f.dependencies,
            "environments": {fe.environment.slug: {"enabled": fe.enabled, "strategies": fe.strategies} for fe in f.states.all()},
        })
    return {"format": "config-hub", "version": FORMAT_VERSION, "tenant": tenant.slug, "configs": configs, "flags": flags,
            "secrets": include_secrets}


def dumps(document: dict, fmt: str) -> str:
    if fmt == "yaml":
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)

    return json.dumps(document, indent=2, ensure_ascii=False)


def loads(text: str) -> Any:
    try:
        document = yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        raise ValidationFailed(f"not valid JSON or YAML: {exc}") from exc
    except RecursionError as exc:
        raise ValidationFailed("not accepted: the document is nested too deeply") from exc
    # The stored-JSON rule, with room for the document's own levels; each value
    # is held to the exact limit when it is validated for writing.
    validate_json_value(document, what="import document", max_depth=JSON_MAX_DEPTH + ENVELOPE_DEPTH, max_bytes=None)
    return document


def _plan(tenant: Tenant, document: Any) -> tuple[list[dict], list[dict]]:

    if not isinstance(document, dict) or document.get("format") != "config-hub":
        raise ValidationFailed("not a config hub export (format: config-hub)")
    envs = {e.slug: e for e in Environment.objects.all()}
    configs, problems = [], []
    for i, item in enumerate(document.get("configs") or []):
        where = f"configs[{i}] ({item.get('key') if isinstance(item, dict) else '?'})"
        if not isinstance(item, dict) or not item.get("key") or "value" not in item:
            problems.append(f"{where}: needs key and value")
            continue
        env = item.get("environment")
        if env and env not in envs:
            problems.append(f"{where}: unknown environment '{env}'")
            continue
        value = item["value"]
        if item.get("is_secret") and isinstance(value, dict) and set(value) == {"encrypted"}:
            try:
                value = decrypt_json(value["encrypted"])
            except Exception:  # noqa: BLE001
                problems.append(f"{where}: the encrypted value cannot be decrypted with this hub's FERNET_KEYS")
                continue
        try:
            config_validate(key=item["key"], value=value, is_secret=bool(item.get("is_secret")))
        except DomainError as exc:
            problems.append(f"{where}: {exc.message}")
            continue
        configs.append({**item, "value": value, "environment": envs.get(env) if env else None})
    segment_ids = tenant_segment_ids(tenant.pk)
    flags = []
    for i, item in enumerate(document.get("flags") or []):
        where = f"flags[{i}] ({item.get('name') if isinstance(item, dict) else '?'})"
        try:
            problem = flag_name_problem(item["name"])
            if problem:
                raise EngineError(problem)
            for env_slug, state in (item.get("environments") or {}).items():
                if env_slug not in envs:
                    raise EngineError(f"unknown environment '{env_slug}'")
                # flag_update's own rule (segments the tenant does not have included).
                flag_validate(name=item["name"], strategies=state.get("strategies") or [],
                              variants=item.get("variants") or [], dependencies=item.get("dependencies") or [],
                              segment_ids=segment_ids)
        except (EngineError, DomainError, KeyError, AttributeError, TypeError) as exc:
            # Every problem is reported here, before anything is written (a
            # segment the tenant does not have included), naming the flag.
            problems.append(f"{where}: {exc}")
            continue
        flags.append(item)
    if problems:
        raise ValidationFailed(f"{len(problems)} problem(s); nothing was imported. First: {problems[0]}",
                               details={"problems": problems}, code="invalid_import")
    return configs, flags


def tenant_import(*, tenant: Tenant, document: Any, actor: str, user_id: int | None = None,
                  can_read_secrets: bool = False) -> dict[str, int]:
    """Validate everything, then write everything (one transaction) or nothing. A
    plain value over a secret entry makes it plain: only if ``can_read_secrets``."""

    configs, flags = _plan(tenant, document)
    envs = {e.slug: e for e in Environment.objects.all()}
    with transaction.atomic():
        for item in configs:
            config_set(tenant=tenant, key=item["key"], value=item["value"], environment=item["environment"],
                       service_name=item.get("service_name") or "", is_secret=bool(item.get("is_secret")),
                       actor=actor, user_id=user_id, can_read_secrets=can_read_secrets)
        for item in flags:
            flag = Flag.objects.filter(tenant=tenant, name=item["name"]).first()
            if flag is None:
                flag = flag_create(tenant=tenant, name=item["name"], description=item.get("description", ""),
                                   kind=item.get("kind", "boolean"), variants=item.get("variants") or [],
                                   dependencies=item.get("dependencies") or [], actor=actor, user_id=user_id)
            for env_slug, state in (item.get("environments") or {}).items():
                flag_update(flag=Flag.objects.get(pk=flag.pk), environment=envs[env_slug], is_enabled=bool(state.get("enabled")),
                            strategies=state.get("strategies") or [], variants=item.get("variants") or [],
                            actor=actor, user_id=user_id)
    return {"configs": len(configs), "flags": len(flags)}
