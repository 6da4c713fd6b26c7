"""API key writes: create (the raw key is shown once), revoke, update, delete.

A revoked, changed or deleted key is forgotten by every process at once
(:func:`api_key_forget`), and again after commit.
"""
from __future__ import annotations

import secrets as pysecrets
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from core import invalidation
from core.api.principal import ALL_SCOPES, API_KEY_PREFIX
from core.audit import set_actor
from core.errors import ValidationFailed
from events.services import event_record

from ..credentials import api_key_cache_key, api_key_hash
from ..models import ApiKey, Environment, Tenant


def api_key_create(
    *,
    name: str,
    tenant: Tenant | None,
    scopes: list[str],
    environment: Environment | None = None,
    expires_at: datetime | None = None,
    actor: str,
    created_by_id: int | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns (row, raw key). The raw key is never stored or shown again."""
    unknown = sorted(set(scopes) - ALL_SCOPES)
    if unknown:
        raise ValidationFailed(f"unknown scope(s): {', '.join(unknown)}", details={"allowed": sorted(ALL_SCOPES)})
    if not scopes:
        raise ValidationFailed("an API key needs at least one scope")
    if not name:
        raise ValidationFailed("an API key needs a name")
    prefix = pysecrets.token_hex(4)
    raw = f"{API_KEY_PREFIX}{prefix}_{pysecrets.token_urlsafe(32)}"
    row = ApiKey(
        name=name, prefix=prefix, key_hash=api_key_hash(raw), tenant=tenant, environment=environment,
        scopes=sorted(set(scopes)), expires_at=expires_at, created_by_id=created_by_id,
    )
    with transaction.atomic():
        set_actor(row, actor, user_id=created_by_id)
        row.save()
        event_record(tenant=tenant, resource_type="api_key", action="created", actor=actor, key=name,
                     data={"prefix": prefix, "scopes": row.scopes})
    return row, raw


def api_key_revoke(*, api_key: ApiKey, actor: str, user_id: int | None = None) -> ApiKey:
    """Revoke a key; effective on the next request (the principal cache entry is dropped)."""
    with transaction.atomic():
        api_key.revoked_at = timezone.now()
        set_actor(api_key, actor, user_id=user_id)
        api_key.save(update_fields=["revoked_at"])
        event_record(tenant=api_key.tenant, resource_type="api_key", action="revoked", actor=actor, key=api_key.name,
                     data={"prefix": api_key.prefix})
    transaction.on_commit(lambda: api_key_forget(api_key.key_hash))
    api_key_forget(api_key.key_hash)
    return api_key


def api_key_forget(key_hash: str) -> None:
    """Drop a key's cached principal everywhere: Redis and every process."""

    cache.delete(api_key_cache_key(key_hash))
    invalidation.invalidate(api_key_cache_key(key_hash))


def api_key_delete(*, api_key: ApiKey, actor: str, user_id: int | None = None) -> None:
    """Delete a key; refused on the very next request, like a revoked one: its cached
    principal is dropped from Redis and every process now and again after commit
    (a request racing the caller's transaction cannot leave it cached)."""
    key_hash = api_key.key_hash
    with transaction.atomic():
        event_record(tenant=api_key.tenant, resource_type="api_key", action="deleted", actor=actor, key=api_key.name,
                     data={"prefix": api_key.prefix})
        set_actor(api_key, actor, user_id=user_id)
        api_key.delete()
    transaction.on_commit(lambda: api_key_forget(key_hash))
    api_key_forget(key_hash)


def api_key_update(*, api_key: ApiKey, actor: str, user_id: int | None = None, **changes: Any) -> ApiKey:
    """Change a key's name, scopes, tenant, environment or expiry; the cache follows at once."""
    if "scopes" in changes:
        unknown = sorted(set(changes["scopes"]) - ALL_SCOPES)
        if unknown:
            raise ValidationFailed(f"unknown scope(s): {', '.join(unknown)}")
    for field_name, value in changes.items():
        setattr(api_key, field_name, value)
    with transaction.atomic():
        set_actor(api_key, actor, user_id=user_id)
        api_key.save()
    transaction.on_commit(lambda: api_key_forget(api_key.key_hash))
    return api_key
