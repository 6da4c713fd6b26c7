"""Reads: tenants, environments, resolution of config values (API keys as
credentials: ``tenants.credentials``).

The hot path here (``config_resolve_cached``) is served from the cache; a cached
read makes no database query.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q

from core.api.conditional import etag_for
from core.api.renderers import dumps
from core.cache import LocalCache
from core.errors import NotFound, ValidationFailed
from core.fields import decrypt_json, encrypt_json
from core.metrics import CONFIG_CACHE

from . import cache as cfg_cache
from . import pins
from .models import ConfigEntry, ConfigSchema, Environment, Tenant

# --- tenants and environments -------------------------------------------------

_TENANT_TTL = 30
# Every request needs its tenant: a process keeps it for a few seconds, so a
# deactivation reaches every process within TENANT_LOCAL_TTL (this process: at once).
_local_tenants = LocalCache("tenants.by-slug", ttl=5.0, max_items=10_000)
# Resolved values and bundles, keyed by their generation tokens (read on every
# request), so a write anywhere is seen at once; the TTL only bounds memory.
_local_resolved = LocalCache("tenants.resolved", ttl=300.0, max_items=50_000)
# Environment pks by slug, dropped over pub/sub when one is created or deleted.
_environments = LocalCache("env:", push=True, max_items=1_000)
_CACHE_HIT, _CACHE_MISS = CONFIG_CACHE.labels("hit"), CONFIG_CACHE.labels("miss")


def tenant_get(*, slug: str) -> Tenant:
    """An active tenant by slug (cached briefly: every request needs it).

    The instance is shared by this process's requests for a few seconds (building a
    model instance costs more than the rest of a cached read): read it, never
    change or save it; the services that change a tenant load their own."""
    ck = f"tenant:{slug}"
    tenant = _local_tenants.get(ck)
    if tenant is None:
        data = cache.get(ck)
        if data is None:
            row = Tenant.objects.filter(slug=slug).first()
            data = (row.pk, row.name, row.is_active) if row else (None, "", False)
            cache.set(ck, data, _TENANT_TTL)
        pk, name, active = data
        tenant = Tenant(pk=pk, slug=slug, name=name, is_active=active) if pk is not None and active else _NO_TENANT
        _local_tenants.set(ck, tenant)
    if tenant is _NO_TENANT:
        raise NotFound(f"tenant '{slug}' not found")
    return tenant


_NO_TENANT = object()  # a slug with no active tenant, kept as briefly as one


def tenant_cache_clear(*, slug: str) -> None:
    cache.delete(f"tenant:{slug}")
    _local_tenants.clear()


def environment_get(*, slug: str) -> Environment:
    """An environment by slug. Every flag evaluation and config read names one, so
    its pk is kept in this process (dropped over pub/sub when the environment is
    created or deleted) in front of the shared cache: no round trip per request.
    An unknown slug is never cached: creating it takes effect at once. The instance
    is shared by this process's requests (as :func:`tenant_get`'s): read it only."""
    ck = f"env:{slug}"

    def load() -> Environment:
        pk = cache.get(ck)
        if pk is None:
            env = Environment.objects.filter(slug=slug).first()
            if env is None:
                raise NotFound(f"environment '{slug}' not found")
            pk = env.pk
            cache.set(ck, pk, 300)
        return Environment(pk=pk, slug=slug, name=slug)

    return _environments.get_or_load(ck, load)


def environment_named(slug: str, *, field: str = "environment") -> Environment:
    """An environment a request names for a write or a filter: one that does not
    exist is bad input (400 naming the value), never "every environment"."""
    try:
        return environment_get(slug=slug)
    except NotFound:
        message = f"unknown environment '{slug}'"
        raise ValidationFailed(message, details={field: [message]}) from None


# --- schemas --------------------------------------------------------------------


def schema_for_key(*, key: str) -> ConfigSchema | None:
    return ConfigSchema.objects.filter(key=key).first()


# --- resolution -----------------------------------------------------------------

SOURCE_DEFAULT = "default"


def scope_rank(*, tenant: bool, environment: bool, service: bool) -> int:
    """How specific a scope is (tenant 4 + environment 2 + service 1: 7 is
    tenant+environment+service, 0 global); the most specific entry of a key wins.
    The one rule for every resolver: the database's, a release's, a change request's."""
    return (4 if tenant else 0) + (2 if environment else 0) + (1 if service else 0)


def _rank(entry: ConfigEntry) -> int:
    return scope_rank(tenant=bool(entry.tenant_id), environment=bool(entry.environment_id),
                      service=bool(entry.service_name))


@dataclass
class Resolution:
    """What a key resolves to for (tenant, environment, service), and why."""

    key: str
    found: bool
    value: Any = None
    is_secret: bool = False
    secret_token: str | None = None  # the encrypted value, for the cache
    source: str | None = None
    version: int | None = None
    entry_id: int | None = None
    environment: str | None = None
    service_name: str | None = None
    chain: list[dict[str, Any]] = field(default_factory=list)

    def to_cache(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "found": self.found,
            "value": None if self.is_secret else self.value,
            "is_secret": self.is_secret,
            "secret_token": self.secret_token,
            "source": self.source,
            "version": self.version,
            "entry_id": self.entry_id,
            "environment": self.environment,
            "service_name": self.service_name,
        }


def _candidates(*, tenant_id: int, environment_id: int | None, service_name: str, key: str | None):
    qs = ConfigEntry.objects.filter(Q(tenant_id=tenant_id) | Q(tenant__isnull=True))
    if environment_id:
        qs = qs.filter(Q(environment_id=environment_id) | Q(environment__isnull=True))
    else:
        qs = qs.filter(environment__isnull=True)
    qs = qs.filter(service_name__in=[service_name, ""] if service_name else [""])
    if key is not None:
        qs = qs.filter(key=key)
    return qs.select_related("environment")


def _chain_item(entry: ConfigEntry, *, reveal: bool) -> dict[str, Any]:
    masked = entry.is_secret and not reveal
    return {
        "source": entry.scope_label,
        "id": entry.pk,
        "version": entry.version,
        "environment": entry.environment.slug if entry.environment_id else None,
        "service_name": entry.service_name or None,
        "value": None if masked else entry.plain_value,
        **({"masked": True} if masked else {}),
    }


def config_resolve(
    *,
    tenant: Tenant,
    key: str,
    environment: str | None = None,
    service_name: str = "",
    explain: bool = False,
    reveal: bool = False,
) -> Resolution:
    """Resolve ``key`` for a tenant, most specific scope first (API.md's order).

    Two queries: the candidate entries of every scope, and the key's schema for
    its ``default_value``. ``explain`` lists every scope that holds the key.
    """
    env_id = environment_get(slug=environment).pk if environment else None
    entries = sorted(
        _candidates(tenant_id=tenant.pk, environment_id=env_id, service_name=service_name, key=key),
        key=_rank,
        reverse=True,
    )
    schema = schema_for_key(key=key)
    chain = [_chain_item(e, reveal=reveal) for e in entries] if explain else []
    if explain and schema is not None and schema.default_value is not None:
        chain.append({"source": SOURCE_DEFAULT, "value": schema.default_value, "version": schema.version})
    if entries:
        win = entries[0]
        return Resolution(
            key=key,
            found=True,
            value=win.plain_value,
            is_secret=win.is_secret,
            secret_token=encrypt_json(win.secret_value) if win.is_secret else None,
            source=win.scope_label,
            version=win.version,
            entry_id=win.pk,
            environment=environment,
            service_name=service_name or None,
            chain=chain,
        )
    if schema is not None and schema.default_value is not None:
        return Resolution(
            key=key, found=True, value=schema.default_value, source=SOURCE_DEFAULT, version=schema.version,
            environment=environment, service_name=service_name or None, chain=chain,
        )
    return Resolution(key=key, found=False, environment=environment, service_name=service_name or None, chain=chain)


def config_resolve_cached(*, tenant: Tenant, key: str, environment: str | None, service_name: str) -> dict[str, Any]:
    """The cached form of :func:`config_resolve` (secrets stay encrypted in the cache);
    a service pinned to a release reads the release (:mod:`tenants.pins`)."""
    pin = pins.pinned(tenant_id=tenant.pk, environment=environment, service_name=service_name)
    if pin is not None:
        return pin.resolution(key)
    # One Redis round trip for the generations; the value itself is then taken
    # from this process when it has it (keyed by those generations, so a write
    # anywhere is seen on the next request), else from Redis, else resolved.
    gens = cfg_cache.generations(tenant.pk, key)
    ck = cfg_cache.resolved_key(tenant.pk, key, environment or "", service_name, gens)
    data = _local_resolved.get(ck) if gens != ("0", "0") else None
    if data is not None:
        _CACHE_HIT.inc()
        return data
    data = cache.get(ck)
    if data is None:
        _CACHE_MISS.inc()
        data = config_resolve(tenant=tenant, key=key, environment=environment, service_name=service_name).to_cache()
        cache.set(ck, data, settings.CONFIG_CACHE_TTL)
    else:
        _CACHE_HIT.inc()
    if gens != ("0", "0"):
        _local_resolved.set(ck, data)
    return data


def resolved_value(data: dict[str, Any], *, reveal: bool) -> tuple[Any, bool]:
    """(value, masked) of a cached resolution for a caller allowed or not to see secrets."""
    if not data["is_secret"]:
        return data["value"], False
    if not reveal:
        return None, True
    return decrypt_json(data["secret_token"]), False


def resolved_entries(*, tenant_id: int, environment_id: int | None, service_name: str) -> dict[str, ConfigEntry]:
    """The winning entry of every key a service (or, ``service_name`` empty, the tenant)
    reads in an environment: one query. Schema defaults are not included."""
    best: dict[str, ConfigEntry] = {}
    for entry in _candidates(tenant_id=tenant_id, environment_id=environment_id, service_name=service_name, key=None):
        current = best.get(entry.key)
        if current is None or _rank(entry) > _rank(current):
            best[entry.key] = entry
    return best


def config_bundle(*, tenant: Tenant, environment: str | None, service_name: str) -> list[dict[str, Any]]:
    """Every key visible to a service, each resolved: one query (plus schema defaults).

    Keys come from entries in the service's scopes; a schema whose key starts with
    ``"<service_name>."`` adds its ``default_value`` when no entry holds the key.
    """
    env_id = environment_get(slug=environment).pk if environment else None
    best = resolved_entries(tenant_id=tenant.pk, environment_id=env_id, service_name=service_name)
    items = []
    for key in sorted(best):
        e = best[key]
        items.append(
            {
                "id": e.pk,
                "key": key,
                "value": None if e.is_secret else e.value,
                "secret_token": encrypt_json(e.secret_value) if e.is_secret else None,
                "environment": environment,
                "service_name": service_name or None,
                "version": e.version,
                "source": e.scope_label,
                "is_secret": e.is_secret,
            }
        )
    if service_name:
        for schema in ConfigSchema.objects.filter(key__startswith=f"{service_name}.", default_value__isnull=False):
            if schema.key not in best:
                items.append(
                    {
                        "id": None, "key": schema.key, "value": schema.default_value, "secret_token": None,
                        "environment": environment, "service_name": service_name, "version": schema.version,
                        "source": SOURCE_DEFAULT, "is_secret": False,
                    }
                )
        items.sort(key=lambda i: i["key"])
    return items


@dataclass(frozen=True)
class Bundle:
    """A service's resolved bundle as the API answers it, shaped once per cache
    generation: rows with secrets masked, the (row, token) pairs a revealing
    caller gets decrypted (per request: plain secrets are never kept in memory),
    and the ETag of each representation."""

    rows: tuple[dict[str, Any], ...]
    secrets: tuple[tuple[int, str], ...]
    etag_masked: str
    etag_revealed: str
    masked_json: bytes  # the masked body as JSON (the lean route answers it as it is)

    @classmethod
    def shape(cls, items: list[dict[str, Any]]) -> Bundle:
        rows, secrets, secret_versions = [], [], []
        for index, item in enumerate(items):
            row = {k: v for k, v in item.items() if k != "secret_token"}
            row["is_encrypted"] = item["is_secret"]
            if item["is_secret"]:
                row["masked"] = True
                secrets.append((index, item["secret_token"]))
                secret_versions.append((index, item.get("id"), item["version"]))
            rows.append(row)
        masked = etag_for(rows)
        revealed = etag_for({"rows": rows, "secrets": secret_versions}) if secrets else masked
        return cls(rows=tuple(rows), secrets=tuple(secrets), etag_masked=masked, etag_revealed=revealed,
                   masked_json=dumps(rows))

    def etag(self, *, reveal: bool) -> str:
        return self.etag_revealed if reveal else self.etag_masked

    def body(self, *, reveal: bool) -> list[dict[str, Any]]:
        out = list(self.rows)
        if reveal:
            for index, token in self.secrets:
                row = {k: v for k, v in out[index].items() if k != "masked"}
                row["value"] = decrypt_json(token)
                out[index] = row
        return out


def config_bundle_cached(*, tenant: Tenant, environment: str | None, service_name: str) -> Bundle:
    """The bundle of :func:`config_bundle`, from this process, else Redis, else the
    database (secrets stay encrypted in both caches); a service pinned to a release
    reads the release (:mod:`tenants.pins`)."""
    pin = pins.pinned(tenant_id=tenant.pk, environment=environment, service_name=service_name)
    if pin is not None:
        return pin.bundle()
    gens = cfg_cache.bundle_generations(tenant.pk)
    ck = cfg_cache.bundle_key(tenant.pk, environment or "", service_name, gens)
    bundle = _local_resolved.get(ck) if gens != ("0", "0") else None
    if bundle is not None:
        _CACHE_HIT.inc()
        return bundle
    data = cache.get(ck)
    if data is None:
        _CACHE_MISS.inc()
        data = config_bundle(tenant=tenant, environment=environment, service_name=service_name)
        cache.set(ck, data, settings.CONFIG_CACHE_TTL)
    else:
        _CACHE_HIT.inc()
    bundle = Bundle.shape(data)
    if gens != ("0", "0"):
        _local_resolved.set(ck, bundle)
    return bundle


def config_entries(*, tenant_id: int | None, all_tenants: bool):
    """Entries a caller may list: its tenant's and the global ones."""
    qs = ConfigEntry.objects.select_related("tenant", "environment").defer("secret_value")
    if not all_tenants:
        qs = qs.filter(Q(tenant_id=tenant_id) | Q(tenant__isnull=True))
    return qs


def tenant_slug(*, tenant_id: int) -> str | None:
    """The slug of a tenant by id, active or not (None: no such tenant)."""
    return Tenant.objects.filter(pk=tenant_id).values_list("slug", flat=True).first()

