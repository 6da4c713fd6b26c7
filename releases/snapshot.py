"""What a release holds: the content of a tenant's environment, its digest, and the
resolution of a view from it.

``content`` (JSON, no secret value anywhere in it)::

    {"format": 1,
     "entries": [{"scope", "service_name", "key", "is_secret", "value" | "secret", "id", "version"}, ...],
     "views":   {"": {key: item}, "<service>": {key: item}, ...},
     "flags":   {name: {"enabled", "strategies", "variants", "dependencies", "kind"}},
     "segments": {"<id>": {"name", "constraints"}},
     "schemas": {key: {"version", "default_value"}}}

- ``entries``: every config entry the tenant's environment resolves from (the
  tenant's and the global ones, for this environment or all, for any service):
  the layering, which a rollback needs to know which scope to write.
- ``views``: the resolved values, computed by the project's own resolution
  (``tenants.selectors.config_bundle``) for the tenant ("") and for every known
  service (service names of config entries and of the tenant's registry
  services). An item: ``{"source", "is_secret", "value" | "secret", "id", "version"}``.
- A secret is ``{"secret": ref}``: ``ref`` is an HMAC-SHA256 of its canonical JSON
  under a key derived from ``SECRET_KEY`` (so equal secrets compare equal without
  their values, and a stolen dump of ``content`` does not allow guessing a secret
  offline); the values live in the release's encrypted ``secrets`` column.

The digest is the SHA-256 of the canonical JSON (sorted keys, no spaces, UTF-8)
of ``content`` without the entries' ``id`` and ``version``: two releases of equal
values, flag states and schema versions have the same digest, whichever writes
led to them.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Q

from core.fields import decrypt_json
from flags.models import Flag
from flags.selectors import flag_state_document
from registry.models import Service
from tenants.compare import same_json
from tenants.models import ConfigEntry, ConfigSchema, Environment, Tenant
from tenants.selectors import SOURCE_DEFAULT, config_bundle, scope_rank

FORMAT = 1
# Fields of entries and view items that say which row and write, not what value.
_BOOKKEEPING = ("id", "version")


def canonical(value: Any) -> bytes:
    """The canonical JSON of a value: what digests and secret refs are computed on."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _ref_key() -> bytes:
    return hashlib.sha256(b"confighub.releases.secret-ref:" + settings.SECRET_KEY.encode()).digest()


def secret_ref(value: Any) -> str:
    """The name of a secret's value in a release (never the value)."""
    return hmac.new(_ref_key(), canonical(value), hashlib.sha256).hexdigest()


def content_digest(content: dict[str, Any]) -> str:
    """SHA-256 of the canonical content without bookkeeping (see the module docstring)."""
    def strip(item: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in item.items() if k not in _BOOKKEEPING}

    payload = {
        **content,
        "entries": [strip(e) for e in content["entries"]],
        "views": {view: {key: strip(item) for key, item in items.items()} for view, items in content["views"].items()},
    }
    return hashlib.sha256(canonical(payload)).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    content: dict[str, Any]
    secrets: dict[str, Any]  # ref -> value: stored encrypted, never shown where content is
    digest: str


def _valued(item: dict[str, Any], *, is_secret: bool, value: Any, secrets: dict[str, Any]) -> dict[str, Any]:
    if is_secret:
        ref = secret_ref(value)
        secrets[ref] = value
        item["secret"] = ref
    else:
        item["value"] = value
    return item


def snapshot_build(*, tenant: Tenant, environment: Environment) -> Snapshot:
    """The content of ``tenant`` in ``environment`` now (read it in one transaction:
    ``releases.services.release_create`` does)."""
    secrets: dict[str, Any] = {}
    rows = (
        ConfigEntry.objects.filter(Q(tenant=tenant) | Q(tenant__isnull=True))
        .filter(Q(environment=environment) | Q(environment__isnull=True))
        .select_related("environment")
        .order_by("key", "service_name", "id")
    )
    entries = [
        _valued({"scope": e.scope_label, "service_name": e.service_name, "key": e.key, "is_secret": e.is_secret,
                 "id": e.pk, "version": e.version}, is_secret=e.is_secret, value=e.plain_value, secrets=secrets)
        for e in rows
    ]
    services = {e["service_name"] for e in entries if e["service_name"]}
    services |= set(Service.objects.filter(tenant=tenant).values_list("name", flat=True))
    views: dict[str, dict[str, Any]] = {}
    for service in ["", *sorted(services)]:
        view = {}
        for row in config_bundle(tenant=tenant, environment=environment.slug, service_name=service):
            value = decrypt_json(row["secret_token"]) if row["is_secret"] else row["value"]
            view[row["key"]] = _valued({"source": row["source"], "is_secret": row["is_secret"], "id": row["id"],
                                        "version": row["version"]}, is_secret=row["is_secret"], value=value,
                                       secrets=secrets)
        views[service] = view
    keys = {e["key"] for e in entries}
    schemas = {
        s.key: {"version": s.version, "default_value": s.default_value}
        for s in ConfigSchema.objects.filter(Q(key__in=keys) | Q(default_value__isnull=False)).order_by("key")
    }
    document = flag_state_document(tenant_id=tenant.pk, environment=environment.slug)
    kinds = dict(Flag.objects.filter(tenant=tenant).values_list("name", "kind"))
    flags = {
        f["name"]: {"enabled": f["enabled"], "strategies": f["strategies"], "variants": f["variants"],
                    "dependencies": f["dependencies"], "kind": kinds.get(f["name"], "boolean")}
        for f in document["features"]
    }
    segments = {str(s["id"]): {"name": s["name"], "constraints": s["constraints"]} for s in document["segments"]}
    content = {"format": FORMAT, "entries": entries, "views": views, "flags": flags, "segments": segments,
               "schemas": schemas}
    return Snapshot(content=content, secrets=secrets, digest=content_digest(content))


# --- resolution from a content ------------------------------------------------------------


def _rank(scope: str) -> int:
    """The rank of a scope label (``tenant+environment``, ``global``, ...)."""
    parts = scope.split("+")
    return scope_rank(tenant="tenant" in parts, environment="environment" in parts, service="service" in parts)


def entries_resolve(entries: list[dict[str, Any]], schemas: dict[str, Any], service: str) -> dict[str, dict[str, Any]]:
    """A view resolved from a content's entries, as ``config_bundle`` resolves it from
    the database (tests/releases/test_snapshot.py holds the two equal): the most
    specific scope wins; for a service, a schema default of a ``<service>.`` key
    that no entry holds."""
    best: dict[str, tuple[int, dict[str, Any]]] = {}
    for entry in entries:
        if entry["service_name"] and entry["service_name"] != service:
            continue
        rank = _rank(entry["scope"])
        current = best.get(entry["key"])
        if current is None or rank > current[0]:
            best[entry["key"]] = (rank, entry)
    view = {}
    for key, (_, e) in best.items():
        item = {"source": e["scope"], "is_secret": e["is_secret"], "id": e["id"], "version": e["version"]}
        item.update({"secret": e["secret"]} if e["is_secret"] else {"value": e["value"]})
        view[key] = item
    if service:
        for key, schema in schemas.items():
            if key.startswith(f"{service}.") and schema["default_value"] is not None and key not in view:
                view[key] = {"source": SOURCE_DEFAULT, "is_secret": False, "id": None, "version": schema["version"],
                             "value": schema["default_value"]}
    return dict(sorted(view.items()))


def content_view(content: dict[str, Any], service: str) -> dict[str, dict[str, Any]]:
    """The resolved values of ``service`` ("" = the tenant) in a content, by key: the
    stored view for a service known at snapshot time, else resolved from the stored entries."""
    view = content["views"].get(service)
    if view is None:
        return entries_resolve(content["entries"], content["schemas"], service)
    return dict(sorted(view.items()))  # jsonb keeps no key order


def same_value(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Whether two items (entries or view items) hold the same value (secrets by ref)."""
    if a is None or b is None:
        return a is b
    return (bool(a.get("is_secret")) == bool(b.get("is_secret")) and same_json(a.get("value"), b.get("value"))
            and a.get("secret") == b.get("secret"))
