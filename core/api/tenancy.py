"""The tenant of a request: the path's, else ``X-Tenant-ID``, else the key's, else ``default``.

A caller bound to one tenant never reaches another: any other tenant is a 404,
exactly as a tenant that does not exist, so a caller cannot even learn which
tenants exist.
"""
from __future__ import annotations

from django.core.cache import cache

from core import directory
from core.cache import LocalCache
from core.errors import NotFound

from .principal import Principal


def request_tenant(request, path_slug: str | None = None):
    return principal_tenant(request.auth, path_slug or request.META.get("HTTP_X_TENANT_ID") or None)


def principal_tenant(principal: Principal | None, slug: str | None):
    """The tenant a caller names (``slug``: the path's or ``X-Tenant-ID``; None: its
    own, else ``default``), or NotFound for one it may not reach. The lean routes
    (``core.api.lean.lean_tenant``) and :func:`request_tenant` both answer with it."""
    if slug is None and principal is not None and principal.tenant_id is not None:
        return tenant_for_principal(principal)
    tenant = directory.tenant_get(slug=slug or directory.default_tenant_slug())
    if principal is not None and principal.tenant_id is not None and tenant.pk != principal.tenant_id:
        raise NotFound(f"tenant '{slug}' not found")
    return tenant


def tenant_for_principal(principal: Principal):
    """The tenant of a caller bound to one (no path slug, no ``X-Tenant-ID``)."""
    return _tenant_by_id(principal.tenant_id)


# Tenant slugs by id: a tenant's slug never changes (checked on every use below).
_slugs = LocalCache("tenancy.slug-by-id", ttl=300.0, max_items=10_000)


def _tenant_by_id(tenant_id: int):
    ck = f"tenant:id:{tenant_id}"
    slug = _slugs.get(ck)  # a tenant's slug never changes
    if slug is None:
        slug = cache.get(ck)
        if slug is None:
            slug = directory.tenant_slug(tenant_id=tenant_id)
            if slug is None:
                raise NotFound("tenant not found")
            cache.set(ck, slug, 300)
        _slugs.set(ck, slug)
    tenant = directory.tenant_get(slug=slug)
    if tenant.pk != tenant_id:
        # The key's tenant was deleted and its slug given to a new tenant: the
        # key (still cached for a moment) must never reach the newcomer.
        _slugs.delete(ck)
        raise NotFound("tenant not found")
    return tenant
