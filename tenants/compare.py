"""Comparing two environments: every key whose resolved value differs, for a tenant
or one service. The admin's compare page (and its promotion) and
``GET /api/v1/environments/compare`` both call :func:`environments_compare`."""
from __future__ import annotations

import json
from typing import Any

from .models import ConfigEntry, ConfigSchema, Environment, Tenant
from .selectors import SOURCE_DEFAULT, resolved_entries


def _json_text(value: Any) -> str:
    # As JSON, not as Python: 1, 1.0 and true are three different values.
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def same_json(a: Any, b: Any) -> bool:
    """Whether two config values are the same JSON (``1``, ``1.0`` and ``true`` differ,
    though Python calls them equal): the one comparison of values that compare,
    releases and change requests use."""
    return _json_text(a) == _json_text(b)


def environments_compare(*, tenant: Tenant, source: Environment, target: Environment, service_name: str = "",
                         reveal: bool = False) -> list[dict[str, Any]]:
    """Every key whose resolved value differs between two environments, for one
    service (its service-scoped entries included) or, with ``service_name`` empty,
    for the tenant (entries of no service). Sorted by key.

    Each difference is ``{"key", "from": side, "to": side}``, a side being
    ``{"value", "source", "is_secret"}`` (``source`` None: the key does not resolve
    there) plus ``"masked": True`` with ``value`` None for a secret the caller may
    not read. Secrets are compared by their plain values, which are never returned
    unless ``reveal``. A schema's ``default_value`` stands in where no entry holds
    the key. Three queries whatever the number of keys. The admin's compare page,
    its promotion and ``GET /api/v1/environments/compare`` all use this.
    """
    left = resolved_entries(tenant_id=tenant.pk, environment_id=source.pk, service_name=service_name)
    right = resolved_entries(tenant_id=tenant.pk, environment_id=target.pk, service_name=service_name)
    keys = sorted(set(left) | set(right))
    only_one_side = [k for k in keys if (k in left) != (k in right)]
    defaults = dict(ConfigSchema.objects.filter(key__in=only_one_side, default_value__isnull=False)
                    .values_list("key", "default_value")) if only_one_side else {}

    def side(entry: ConfigEntry | None, key: str) -> tuple[Any, dict[str, Any]]:
        if entry is None:
            if key in defaults:
                return defaults[key], {"value": defaults[key], "source": SOURCE_DEFAULT, "is_secret": False}
            return None, {"value": None, "source": None, "is_secret": False}
        value = entry.plain_value
        if entry.is_secret and not reveal:
            return value, {"value": None, "source": entry.scope_label, "is_secret": True, "masked": True}
        return value, {"value": value, "source": entry.scope_label, "is_secret": entry.is_secret}

    out = []
    for key in keys:
        (lv, ls), (rv, rs) = side(left.get(key), key), side(right.get(key), key)
        if ls["source"] is None and rs["source"] is None:
            continue
        if ls["source"] is None or rs["source"] is None or not same_json(lv, rv):
            out.append({"key": key, "from": ls, "to": rs})
    return out
