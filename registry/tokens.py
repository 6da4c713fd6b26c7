"""Service-token secrets per tenant: create, revoke, delete, and the active set a
service token is verified against.

Plain secrets are kept in this process only (never in Redis), dropped over
pub/sub when a secret is added, revoked or deleted.
"""
from __future__ import annotations

import secrets as pysecrets
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core import invalidation
from core.cache import LocalCache
from core.errors import ValidationFailed
from events.services import event_record
from tenants.models import Tenant

from .models import ServiceTokenSecret

# --- reads ------------------------------------------------------------------------------

# Each tenant's active secrets, in this process only; dropped over pub/sub.
_secrets = LocalCache("registry:service-token-secrets:", push=True, max_items=10_000)


def _token_secrets_name(tenant_id: int) -> str:
    return f"registry:service-token-secrets:{tenant_id}"


def service_token_secrets(*, tenant_id: int) -> dict[str, Any]:
    """``{"tenant": slug, "secrets": {kid: (id, secret)}}``: the tenant's active secrets."""

    def load() -> dict[str, Any]:
        rows = ServiceTokenSecret.objects.filter(tenant_id=tenant_id, revoked_at__isnull=True).values_list("pk", "kid", "secret")
        return {"tenant": Tenant.objects.filter(pk=tenant_id).values_list("slug", flat=True).first(),
                "secrets": {kid: (pk, secret) for pk, kid, secret in rows}}

    return _secrets.get_or_load(_token_secrets_name(tenant_id), load)


def service_token_candidates(*, tenant_id: int, kid: str | None) -> list[tuple[Any, str]]:
    """(reference, secret) pairs a token of this tenant's instance may be signed
    with: the secret its ``kid`` names, else every active secret of the tenant and,
    for the one tenant SERVICE_JWT_SHARED_SECRET_TENANT names, SERVICE_JWT_SECRET."""
    entry = service_token_secrets(tenant_id=tenant_id)
    if kid is not None:
        found = entry["secrets"].get(kid)
        return [] if found is None else [found]
    candidates = list(entry["secrets"].values())
    shared = settings.SERVICE_JWT_SECRET
    if shared and entry["tenant"] and entry["tenant"] == settings.SERVICE_JWT_SHARED_SECRET_TENANT:
        candidates.append((("shared", shared), shared))
    return candidates


def service_token_secret_accepted(*, tenant_id: int, reference: Any) -> bool:
    """Whether the secret that verified a cached token is still accepted for the tenant."""
    return any(ref == reference for ref, _secret in service_token_candidates(tenant_id=tenant_id, kid=None))


def service_token_secrets_forget(tenant_id: int) -> None:
    """Drop the tenant's secrets everywhere now and again after commit (a request
    racing the caller's transaction cannot leave the old set cached)."""
    name = _token_secrets_name(tenant_id)
    invalidation.invalidate(name)
    transaction.on_commit(lambda: invalidation.invalidate(name))


# --- writes -----------------------------------------------------------------------------


def service_token_secret_create(*, tenant: Tenant, name: str = "", actor: str) -> tuple[ServiceTokenSecret, str]:
    """A new HS256 secret for the tenant's service tokens; returns (row, secret).
    The secret is stored encrypted and shown once; tokens may name it with its
    ``kid`` header. The tenant's other secrets stay valid (rotation)."""
    if len(name) > 100:
        raise ValidationFailed("a secret's name has at most 100 characters")
    raw = pysecrets.token_urlsafe(32)
    row = ServiceTokenSecret(tenant=tenant, kid=f"stk_{pysecrets.token_hex(8)}", name=name, secret=raw, created_by=actor)
    with transaction.atomic():
        row.save()
        event_record(tenant=tenant, resource_type="service_token_secret", action="created", actor=actor, key=row.kid,
                     data={"kid": row.kid, "name": name})
        service_token_secrets_forget(tenant.pk)
    return row, raw


def service_token_secret_revoke(*, secret: ServiceTokenSecret, actor: str) -> ServiceTokenSecret:
    """Tokens signed with it are refused from the next request on, in every process."""
    with transaction.atomic():
        ServiceTokenSecret.objects.filter(pk=secret.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        secret.refresh_from_db(fields=["revoked_at"])
        event_record(tenant=secret.tenant, resource_type="service_token_secret", action="revoked", actor=actor,
                     key=secret.kid, data={"kid": secret.kid, "name": secret.name})
        service_token_secrets_forget(secret.tenant_id)
    return secret


def service_token_secret_delete(*, secret: ServiceTokenSecret, actor: str) -> None:
    with transaction.atomic():
        event_record(tenant=secret.tenant, resource_type="service_token_secret", action="deleted", actor=actor,
                     key=secret.kid, data={"kid": secret.kid, "name": secret.name})
        service_token_secrets_forget(secret.tenant_id)
        secret.delete()
