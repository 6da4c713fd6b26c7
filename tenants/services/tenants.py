"""Tenant writes: create, update, delete."""
from __future__ import annotations

from django.core.cache import cache
from django.db import transaction

from core.audit import set_actor
from core.errors import Conflict, ValidationFailed
from events.services import event_record

from ..credentials import api_key_cache_key
from ..models import ApiKey, Tenant
from ..selectors import tenant_cache_clear
from .api_keys import api_key_forget
from .common import full_clean


def tenant_create(*, slug: str, name: str = "", is_active: bool = True, actor: str) -> Tenant:
    tenant = Tenant(slug=slug, name=name or slug, is_active=is_active)
    full_clean(tenant)
    with transaction.atomic():
        if Tenant.objects.filter(slug=slug).exists():
            raise Conflict(f"tenant '{slug}' already exists")
        set_actor(tenant, actor)
        tenant.save()
        event_record(tenant=tenant, resource_type="tenant", action="created", actor=actor, key=slug)
    tenant_cache_clear(slug=slug)
    return tenant


def tenant_update(*, tenant: Tenant, name: str | None = None, is_active: bool | None = None, actor: str) -> Tenant:
    if tenant.slug == "default" and is_active is False:
        raise ValidationFailed("the built-in tenant 'default' cannot be deactivated")
    if name is not None:
        tenant.name = name
    if is_active is not None:
        tenant.is_active = is_active
    full_clean(tenant)
    with transaction.atomic():
        set_actor(tenant, actor)
        tenant.save()
        event_record(tenant=tenant, resource_type="tenant", action="updated", actor=actor, key=tenant.slug)
    tenant_cache_clear(slug=tenant.slug)
    return tenant


def tenant_delete(*, tenant: Tenant, actor: str) -> None:
    if tenant.slug == "default":
        raise ValidationFailed("the built-in tenant 'default' cannot be deleted")
    key_hashes = list(ApiKey.objects.filter(tenant=tenant).values_list("key_hash", flat=True))
    tenant_id = tenant.pk
    with transaction.atomic():
        event_record(tenant=None, resource_type="tenant", action="deleted", actor=actor, key=tenant.slug)
        set_actor(tenant, actor)
        tenant.delete()
    tenant_cache_clear(slug=tenant.slug)
    # Its keys are gone with it: refuse them on the next request, not after the cache TTL
    # (the shared cache and every process's copy; again after commit when a caller's
    # transaction, e.g. the admin's, is still open).
    cache.delete_many([api_key_cache_key(h) for h in key_hashes] + [f"tenant:id:{tenant_id}"])
    for h in key_hashes:
        api_key_forget(h)
        transaction.on_commit(lambda h=h: api_key_forget(h))
