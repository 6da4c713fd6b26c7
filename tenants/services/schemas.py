"""Schema writes: register or replace the schema of a key, delete it.

What a schema must satisfy is :func:`tenants.schemas.schema_validate`'s rule.
"""
from __future__ import annotations

from typing import Any

from django.db import transaction

from core.audit import set_actor
from core.errors import NotFound, StaleVersion
from events.services import event_record

from .. import cache as cfg_cache
from ..guard import write_check
from ..models import ConfigSchema
from ..schemas import schema_validate
from .common import full_clean


def schema_set(
    *,
    key: str,
    schema: Any,
    metadata: dict | None = None,
    required: bool = False,
    default_value: Any = None,
    expected_version: int | None = None,
    actor: str,
    user_id: int | None = None,
) -> tuple[ConfigSchema, bool]:
    """Register or replace the schema of a key.

    Refused by :func:`tenants.schemas.schema_validate`: a schema that is not a
    valid draft 2020-12 schema, a ``default_value`` that breaks it, or existing
    values of the key that would break it (the refusal lists those entries and
    their violations, never a secret).
    """
    write_check(tenant=None, environment=None, resource="schema", action="update", key=key, actor=actor, user_id=user_id,
                values={"default_value": default_value})
    schema_validate(key=key, schema=schema, metadata=metadata, default_value=default_value)
    with transaction.atomic():
        obj = ConfigSchema.objects.select_for_update().filter(key=key).first()
        created = obj is None
        if created:
            obj = ConfigSchema(key=key)
        elif expected_version is not None and obj.version != expected_version:
            raise StaleVersion(f"schema '{key}' is at version {obj.version}", details={"current_version": obj.version})
        else:
            obj.version += 1
        obj.schema, obj.metadata, obj.required, obj.default_value = schema, metadata or {}, required, default_value
        full_clean(obj, exclude=["schema", "metadata", "default_value"])
        set_actor(obj, actor, user_id=user_id)
        obj.save()
        # The default value takes part in resolution of every tenant. Caches before
        # the event: a listener woken by it must read the new default.
        _invalidate_everywhere(key)
        event_record(
            tenant=None, resource_type="schema", action="created" if created else "updated", actor=actor,
            key=key, version=obj.version, data={"required": required},
        )
    return obj, created


def schema_delete(*, key: str, actor: str, user_id: int | None = None) -> None:
    write_check(tenant=None, environment=None, resource="schema", action="delete", key=key, actor=actor, user_id=user_id)
    with transaction.atomic():
        obj = ConfigSchema.objects.filter(key=key).first()
        if obj is None:
            raise NotFound(f"no schema for '{key}'")
        _invalidate_everywhere(key)  # before the event, as in schema_set
        event_record(tenant=None, resource_type="schema", action="deleted", actor=actor, key=key, version=obj.version)
        set_actor(obj, actor, user_id=user_id)
        obj.delete()


def _invalidate_everywhere(key: str) -> None:
    cfg_cache.invalidate_keys(None, [key])
