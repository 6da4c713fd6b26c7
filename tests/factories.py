"""Builders for the objects tests keep making, in one place.

Use them as ``from tests import factories as make``::

    entry = make.config(tenant, "db.url", "postgres://db/app", environment=environments["production"])
    flag = make.flag(tenant, "new_checkout", environment=environments["production"], is_enabled=True)
    inst = make.instance(tenant, "billing", "http://127.0.0.1:9401")

Each builder calls the real service function (``tenants.services.config_create``
etc.), so every object a test starts from went through the same validation,
events, history and cache invalidation as one an operator makes. Keyword
arguments are the service's own and are passed on unchanged; only ``actor``
gets a default. When the service itself is what a test is about (its refusals,
its return value), call the service directly instead.
"""
from __future__ import annotations

from typing import Any

ACTOR = "test"


def tenant(slug: str, *, name: str = "", actor: str = ACTOR, **kwargs: Any):
    from tenants.services.tenants import tenant_create

    return tenant_create(slug=slug, name=name or slug.title(), actor=actor, **kwargs)


def environment(slug: str, *, name: str = "", actor: str = ACTOR):
    from tenants.services.environments import environment_create

    return environment_create(slug=slug, name=name, actor=actor)


def config(tenant, key: str, value: Any, *, actor: str = ACTOR, **kwargs: Any):
    """A config entry in one scope: ``tenant=None`` for the global one; ``environment=``,
    ``service_name=``, ``is_secret=``, ``description=`` narrow or mark it."""
    from tenants.services.configs import config_create

    return config_create(tenant=tenant, key=key, value=value, actor=actor, **kwargs)


def secret(tenant, key: str, value: Any, **kwargs: Any):
    """A secret config entry (``config(..., is_secret=True)``)."""
    return config(tenant, key, value, is_secret=True, **kwargs)


def schema(key: str, schema: Any, *, actor: str = ACTOR, **kwargs: Any):
    """The JSON schema of ``key`` (created or replaced); returns the ConfigSchema row."""
    from tenants.services.schemas import schema_set

    row, _created = schema_set(key=key, schema=schema, actor=actor, **kwargs)
    return row


def api_key(*, tenant=None, scopes=("configs:read",), name: str | None = None, actor: str = ACTOR, **kwargs: Any):
    """An API key; returns ``(row, raw_key)`` (the raw key is shown once, as by the service)."""
    from tenants.services.api_keys import api_key_create

    return api_key_create(name=name or f"key-{'-'.join(scopes)}"[:90], tenant=tenant, scopes=list(scopes),
                          actor=actor, **kwargs)


def flag(tenant, name: str, *, actor: str = ACTOR, **kwargs: Any):
    """A flag; with ``environment=`` also its state there (``is_enabled``,
    ``rollout_percentage``, ``strategies``, ``variants``, ...)."""
    from flags.services.flags import flag_create

    return flag_create(tenant=tenant, name=name, actor=actor, **kwargs)


def segment(tenant, name: str, constraints: list, *, actor: str = ACTOR, **kwargs: Any):
    from flags.services.segments import segment_set

    return segment_set(tenant=tenant, name=name, constraints=constraints, actor=actor, **kwargs)


def instance(tenant, service_name: str, url: str, *, actor: str = ACTOR, **kwargs: Any):
    """A registered service instance (its Service is made on first use); returns the Instance."""
    from registry.services import instance_register

    row, _created = instance_register(tenant=tenant, service_name=service_name, url=url, actor=actor, **kwargs)
    return row


def webhook(tenant, url: str, *, actor: str = ACTOR, **kwargs: Any):
    """A webhook subscription (``resource_types=``, ``key_prefix=``, ``environment=`` filter it)."""
    from events.services import webhook_create

    return webhook_create(tenant=tenant, url=url, actor=actor, **kwargs)


def variant(name: str, weight: int, payload_type: str, value: str, *, stickiness: str = "default") -> dict:
    """An Unleash variant with a payload, as ``flag(..., variants=[...])`` takes it (data only)."""
    return {"name": name, "weight": weight, "stickiness": stickiness, "payload": {"type": payload_type, "value": value}}
