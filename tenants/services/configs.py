"""Config entry writes: create, update, set (create or update), delete, revert, reveal.

A value is validated by :func:`tenants.schemas.config_validate` (the stored-JSON
rule and the key's schema) before anything is written.
"""
from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from core.audit import set_actor
from core.errors import Conflict, Forbidden, NotFound, StaleVersion
from core.logging import register_secret
from events.services import event_record

from .. import cache as cfg_cache
from ..guard import write_check
from ..history import config_history_scrub
from ..models import ConfigEntry, Environment, Tenant
from ..schemas import config_validate
from .common import full_clean

_UNSET: Any = object()


def _event_data(entry: ConfigEntry, *, value_changed: bool) -> dict[str, Any]:
    # A secret's value never enters an event: only the fact that it changed.
    data: dict[str, Any] = {"id": entry.pk, "is_secret": entry.is_secret, "scope": entry.scope_label}
    if entry.is_secret:
        data["value_changed"] = value_changed
    else:
        data["value"] = entry.value
    return data


def _announce(entry: ConfigEntry, *, action: str, actor: str, value_changed: bool = True) -> None:
    # Caches first: after commit, callbacks run in the order they were registered,
    # and a listener woken by the event (long poll, stream, a client re-fetching its
    # bundle) must read the new value, never the one cached before the change.
    cfg_cache.invalidate_keys(entry.tenant_id, [entry.key])
    event_record(
        tenant=entry.tenant,
        resource_type="config",
        action=action,
        actor=actor,
        key=entry.key,
        environment=entry.environment.slug if entry.environment_id else "",
        service_name=entry.service_name,
        version=entry.version,
        data=_event_data(entry, value_changed=value_changed),
    )


def _locked_version(entry: ConfigEntry, expected_version: int | None) -> int:
    """The entry's version, its row locked until the caller's transaction ends; 404 when
    it is gone, 412 when a writer holding ``expected_version`` is too late."""
    locked = ConfigEntry.objects.select_for_update().filter(pk=entry.pk).values_list("version", flat=True).first()
    if locked is None:
        raise NotFound("config entry not found")
    if expected_version is not None and locked != expected_version:
        raise StaleVersion(
            f"config entry {entry.pk} is at version {locked}, not {expected_version}",
            details={"current_version": locked},
        )
    return locked


def _set_value(entry: ConfigEntry, value: Any) -> None:
    if entry.is_secret:
        entry.secret_value, entry.value = value, None
        if isinstance(value, str):
            register_secret(value)
    else:
        entry.value, entry.secret_value = value, None


def config_create(
    *,
    tenant: Tenant | None,
    key: str,
    value: Any,
    environment: Environment | None = None,
    service_name: str = "",
    description: str = "",
    is_secret: bool = False,
    actor: str,
    user_id: int | None = None,
) -> ConfigEntry:
    """Create an entry in one scope; 409 when the scope already holds the key."""
    write_check(tenant=tenant, environment=environment, resource="config", action="create", key=key,
                actor=actor, user_id=user_id, service_name=service_name)
    entry = ConfigEntry(
        tenant=tenant, environment=environment, service_name=service_name or "", key=key,
        description=description or "", is_secret=is_secret,
    )
    _set_value(entry, value)
    full_clean(entry, exclude=["value", "secret_value"])
    config_validate(key=key, value=value, is_secret=is_secret)
    try:
        with transaction.atomic():
            set_actor(entry, actor, user_id=user_id)
            entry.save()
            _announce(entry, action="created", actor=actor)
    except IntegrityError as exc:
        raise Conflict(f"'{key}' already has a value in scope {entry.scope_label}; update it instead") from exc
    return entry


def config_secrecy_check(*, entry: ConfigEntry, is_secret: bool | None, can_read_secrets: bool) -> None:
    """Turning a secret into a plain value shows its value to every reader of the
    entry, its events and webhooks: only a caller who may read secrets may
    (``secrets:read``; in the admin, the permission to reveal secrets). Writing a
    secret's new value, or making a plain value secret, needs no such right."""
    if entry.pk and entry.is_secret and is_secret is False and not can_read_secrets:
        raise Forbidden(
            f"'{entry.key}' is a secret: making it plain needs the secrets:read scope "
            "(in the admin, the permission to reveal secrets)",
            code="secrets_read_required", details={"field": "is_secret"},
        )


def config_update(
    *,
    entry: ConfigEntry,
    value: Any = _UNSET,
    description: str | None = None,
    is_secret: bool | None = None,
    expected_version: int | None = None,
    actor: str,
    user_id: int | None = None,
    reason: str | None = None,
    can_read_secrets: bool = False,
) -> ConfigEntry:
    """Change an entry. With ``expected_version`` the write wins only if nobody wrote since.

    The version check is a conditional UPDATE (``WHERE version = expected``) so
    of N concurrent writers holding the same version exactly one wins; the rest
    get :class:`StaleVersion` (412). A secret becomes plain only for a caller that
    ``can_read_secrets`` (:func:`config_secrecy_check`), whatever the path.
    """
    write_check(tenant=entry.tenant, environment=entry.environment, resource="config", action="update",
                key=entry.key, actor=actor, user_id=user_id, service_name=entry.service_name)
    config_secrecy_check(entry=entry, is_secret=is_secret, can_read_secrets=can_read_secrets)
    current = entry.plain_value
    new_value = current if value is _UNSET else value
    if is_secret is not None:
        entry.is_secret = is_secret
    value_changed = value is not _UNSET and new_value != current
    if description is not None:
        entry.description = description
    _set_value(entry, new_value)
    full_clean(entry, exclude=["value", "secret_value"])
    config_validate(key=entry.key, value=new_value, is_secret=entry.is_secret)
    with transaction.atomic():
        entry.version = _locked_version(entry, expected_version) + 1
        set_actor(entry, actor, user_id=user_id, reason=reason)
        entry.save()
        if entry.is_secret:
            # Its plain value from before it became secret may be the secret now:
            # gone from its history and earlier events, in this transaction.
            config_history_scrub(entry=entry)
        _announce(entry, action="updated", actor=actor, value_changed=value_changed)
    return entry


def config_set(
    *,
    tenant: Tenant | None,
    key: str,
    value: Any,
    environment: Environment | None = None,
    service_name: str = "",
    expected_version: int | None = None,
    is_secret: bool | None = None,
    actor: str,
    user_id: int | None = None,
    can_read_secrets: bool = False,
) -> tuple[ConfigEntry, bool]:
    """Create or update the entry of one scope (``PUT /config/tenants/{tenant_id}/configs/{key}``). Returns (entry, created)."""
    entry = (
        ConfigEntry.objects.filter(tenant=tenant, environment=environment, service_name=service_name or "", key=key)
        .select_related("tenant", "environment")
        .first()
    )
    if entry is None:
        if expected_version not in (None, 0):
            raise StaleVersion(f"'{key}' does not exist in this scope (expected version {expected_version})")
        try:
            return (
                config_create(
                    tenant=tenant, key=key, value=value, environment=environment, service_name=service_name,
                    is_secret=bool(is_secret), actor=actor, user_id=user_id,
                ),
                True,
            )
        except Conflict:
            # Lost a race with another creator: fall through to an update.
            entry = ConfigEntry.objects.get(
                tenant=tenant, environment=environment, service_name=service_name or "", key=key
            )
    return (
        config_update(
            entry=entry, value=value, is_secret=is_secret, expected_version=expected_version,
            actor=actor, user_id=user_id, can_read_secrets=can_read_secrets,
        ),
        False,
    )


def config_delete(*, entry: ConfigEntry, expected_version: int | None = None, actor: str, user_id: int | None = None) -> None:
    write_check(tenant=entry.tenant, environment=entry.environment, resource="config", action="delete",
                key=entry.key, actor=actor, user_id=user_id, service_name=entry.service_name)
    with transaction.atomic():
        _locked_version(entry, expected_version)
        _announce(entry, action="deleted", actor=actor)
        set_actor(entry, actor, user_id=user_id)
        entry.delete()


def config_revert(*, entry: ConfigEntry, history_id: int, actor: str, user_id: int | None = None) -> ConfigEntry:
    """Put an entry back to an earlier version of its history.

    Goes through :func:`config_update`: validated against the key's schema again,
    versioned, audited (reason "revert to version N") and announced. A secret's
    value is not in the history, so reverting a secret restores its description only.
    """
    record = ConfigEntry.history.filter(id=entry.pk, history_id=history_id).first()
    if record is None:
        raise NotFound(f"no history record {history_id} for config entry {entry.pk}")
    kwargs: dict[str, Any] = {}
    if not entry.is_secret and not record.is_secret:
        kwargs["value"] = record.value
    return config_update(
        entry=entry, description=record.description, actor=actor, user_id=user_id,
        reason=f"revert to version {record.version}", **kwargs,
    )


def config_reveal(*, entry: ConfigEntry, actor: str, user_id: int | None = None) -> Any:
    """Return a secret's value to an operator allowed to see it, and record that they did."""
    with transaction.atomic():
        event_record(
            tenant=entry.tenant, resource_type="config", action="revealed", actor=actor, key=entry.key,
            environment=entry.environment.slug if entry.environment_id else "", service_name=entry.service_name,
            version=entry.version, data={"id": entry.pk, "is_secret": True},
        )
    return entry.secret_value
