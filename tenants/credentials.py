"""API keys as credentials: the stored hash, the key's shape, and the principal of
a raw key, kept per process (push-invalidated) and in Redis so that a cached key
costs no database query; ``last_used_at`` written at most once a minute."""
from __future__ import annotations

import hashlib
import hmac
import re
import time

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from core import directory
from core.api.principal import API_KEY_PREFIX, Principal
from core.cache import LocalCache

from .models import ApiKey

# --- API keys -------------------------------------------------------------------


def api_key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


# An API key's last use is written at most once a minute: this process asks Redis
# at most once a minute per key.
_local_used = LocalCache("tenants.api-key-used", ttl=60.0, max_items=10_000)
# Valid API keys' principals, dropped over pub/sub when a key is revoked or
# changed (an unknown key is never kept here: ``_keep_locally``).
_api_keys = LocalCache("apikey:", push=True, max_items=50_000)


def api_key_cache_key(key_hash: str) -> str:
    return f"apikey:{key_hash}"


# What api_key_create hands out: API_KEY_PREFIX, 8 hex digits, "_", 43 URL-safe
# base64 characters (256 bits). Anything else is refused before any cache or query.
_API_KEY_SHAPE = re.compile(re.escape(API_KEY_PREFIX) + r"[0-9a-f]{8}_[A-Za-z0-9_-]{43}")
# api_key_principal(allow_query=False): the answer needs the database.
UNCHECKED = directory.UNCHECKED


def api_key_well_formed(raw_key: str) -> bool:
    return _API_KEY_SHAPE.fullmatch(raw_key) is not None


def api_key_principal(*, raw_key: str, allow_query: bool = True) -> Principal | None:
    """The principal of a raw API key, or None when malformed, unknown, revoked or expired.

    Cached by hash for API_KEY_CACHE_TTL seconds: no database query per request.
    A key that is not valid is cached in Redis only (with the same TTL), never in
    this process, so unknown keys cannot grow a process's memory.
    ``allow_query=False`` answers UNCHECKED instead of querying the database
    (the caller decides first whether this client may cost a query).
    ``last_used_at`` is written at most once a minute per key.
    """
    if not api_key_well_formed(raw_key):
        return None
    digest = api_key_hash(raw_key)
    ck = api_key_cache_key(digest)
    data = _api_keys.get_or_load(ck, lambda: _api_key_data(ck, digest, allow_query), keep=_keep_locally)
    if data is None:
        return UNCHECKED
    if not data["valid"]:
        return None
    return _principal_from(data)


def _keep_locally(data: dict) -> bool:
    return bool(data.get("valid"))


def _api_key_data(ck: str, digest: str, allow_query: bool = True) -> dict | None:
    data = cache.get(ck)
    if data is None:
        if not allow_query:
            return None
        row = ApiKey.objects.select_related("tenant", "environment").filter(key_hash=digest).first()
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            data = {"valid": False}
        else:
            data = {
                "valid": row.revoked_at is None and (row.tenant is None or row.tenant.is_active),
                "id": row.pk,
                "name": row.name,
                "tenant_id": row.tenant_id,
                "scopes": list(row.scopes),
                "environment": row.environment.slug if row.environment_id else None,
                "expires_at": row.expires_at.timestamp() if row.expires_at else None,
            }
        cache.set(ck, data, settings.API_KEY_CACHE_TTL)
    return data


def _principal_from(data: dict) -> Principal | None:
    expires_at = data["expires_at"]
    if expires_at is not None and expires_at <= time.time():
        return None
    # last_used_at: at most one write a minute per key, and one Redis call a
    # minute per key and process.
    if _local_used.get(data["id"]) is None:
        _local_used.set(data["id"], True)
        if cache.add(f"apikey:used:{data['id']}", 1, 60):
            ApiKey.objects.filter(pk=data["id"]).update(last_used_at=timezone.now())
    # The principal is immutable: built once per loaded entry, kept beside it in
    # this process (the entry in Redis does not change).
    principal = data.get("_principal")
    if principal is None:
        principal = data["_principal"] = Principal(
            kind="apikey",
            ident=str(data["id"]),
            label=data["name"],
            tenant_id=data["tenant_id"],
            scopes=frozenset(data["scopes"]),
            environment=data["environment"],
        )
    return principal
