"""Cache keys and precise invalidation for resolved config reads.

A resolved read for (tenant, key, environment, service) is cached under a key that
embeds two generation tokens: one for (tenant, key) and one for (global, key).
A write bumps exactly the generation of the key it changed (the tenant's, or the
global one for a global entry), after commit. Every cached combination of
environment and service for that key is thereby invalidated at once, and nothing
else is. Bundles (all keys of a service) use a per-tenant and a global bundle
generation the same way.

Why bump after commit: a reader that fetched the old generation before the
commit writes its (old) answer under the old generation's key, which no reader
asks for any more, so no stale value can outlive a write.

Redis down: django-redis is configured with IGNORE_EXCEPTIONS, so gets miss and
reads fall back to the database; CONFIG_CACHE_TTL bounds how long an entry cached
before a Redis partition could survive a bump lost during it.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.core.cache import cache
from django.db import transaction

from core import invalidation
from core.cache import LocalCache

GLOBAL = "g"
# The generation tokens in this process, dropped over pub/sub by every bump.
_generations = LocalCache("cfg:", push=True, max_items=50_000)


def _gen_key(tenant_id: int | None, key: str) -> str:
    return f"cfg:gen:{tenant_id or GLOBAL}:{key}"


def _bundle_gen_key(tenant_id: int | None) -> str:
    return f"cfg:bgen:{tenant_id or GLOBAL}"


def _pair(tkey: str, gkey: str) -> tuple[str, str]:
    if invalidation.enabled():
        return (
            _generations.get_or_load(tkey, lambda: _one(tkey)) or "0",
            _generations.get_or_load(gkey, lambda: _one(gkey)) or "0",
        )
    return _pair_from_redis(tkey, gkey)


def _one(key: str) -> str | None:
    value = cache.get(key)
    if value is None and cache.add(key, uuid.uuid4().hex[:12], None):
        value = cache.get(key)
    return value or cache.get(key)


def _pair_from_redis(tkey: str, gkey: str) -> tuple[str, str]:
    found = cache.get_many([tkey, gkey])
    if len(found) < 2:
        # A key never written since Redis started: give it a generation so the
        # per-process cache can key on it. With Redis down nothing is stored,
        # the pair stays ("0", "0") and callers skip every cache.
        for k in (tkey, gkey):
            if k not in found and cache.add(k, uuid.uuid4().hex[:12], None):
                pass
        found = cache.get_many([tkey, gkey])
    return found.get(tkey) or "0", found.get(gkey) or "0"


def generations(tenant_id: int, key: str) -> tuple[str, str]:
    """The (tenant, global) generation tokens of a key, in one cache round trip."""
    return _pair(_gen_key(tenant_id, key), _gen_key(None, key))


def bundle_generations(tenant_id: int) -> tuple[str, str]:
    return _pair(_bundle_gen_key(tenant_id), _bundle_gen_key(None))


def resolved_key(tenant_id: int, key: str, environment: str, service: str, gens: tuple[str, str]) -> str:
    return f"cfg:r:{tenant_id}:{environment}:{service}:{gens[0]}:{gens[1]}:{key}"


def bundle_key(tenant_id: int, environment: str, service: str, gens: tuple[str, str]) -> str:
    return f"cfg:b:{tenant_id}:{environment}:{service}:{gens[0]}:{gens[1]}"


def invalidate_keys(tenant_id: int | None, keys: Iterable[str]) -> None:
    """Bump the generation of each key (and the scope's bundles) once the transaction commits."""
    keys = list(keys)

    def bump() -> None:
        token = uuid.uuid4().hex[:12]
        values = {_gen_key(tenant_id, k): token for k in keys}
        values[_bundle_gen_key(tenant_id)] = token
        cache.set_many(values, timeout=None)
        invalidation.invalidate(*values)

    transaction.on_commit(bump)
