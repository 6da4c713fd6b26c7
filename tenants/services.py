"""Writes: the one way to change a tenant, an environment, a config, a schema or a key.

The admin's ``save_model`` and actions, the DRF views, the management commands
and the Celery tasks call these functions and nothing else. Each write is
validated, versioned, audited (simple-history with the actor), announced (an
event in the same transaction) and invalidates exactly the cache it affects.
"""
from __future__ import annotations

import secrets as pysecrets
from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.api.principal import ALL_SCOPES
from core.audit import set_actor
from core.errors import Conflict, Forbidden, NotFound, StaleVersion, ValidationFailed
from core.jsonvalue import validate_json_value
from core.logging import register_secret
from events.services import event_record

from . import cache as cfg_cache
from .models import ApiKey, ConfigEntry, ConfigSchema, Environment, Tenant
from .schemas import schema_check, validate_value, violations
from .selectors import api_key_cache_key, api_key_hash, tenant_cache_clear

_UNSET: Any = object()


def _full_clean(instance, *, exclude: list[str] | None = None) -> None:
    try:
        instance.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except DjangoValidationError as exc:
        details = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        first = next(iter(details.values()))[0] if isinstance(details, dict) else details[0]
        raise ValidationFailed(str(first), details=details) from exc


# --- tenants and environments ---------------------------------------------------


def tenant_create(*, slug: str, name: str = "", is_active: bool = True, actor: str) -> Tenant:
    tenant = Tenant(slug=slug, name=name or slug, is_active=is_active)
    _full_clean(tenant)
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
    _full_clean(tenant)
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
        _forget_key(h)
        transaction.on_commit(lambda h=h: _forget_key(h))


def environment_create(*, slug: str, name: str = "", actor: str) -> Environment:
    env = Environment(slug=slug, name=name or slug)
    _full_clean(env)
    with transaction.atomic():
        if Environment.objects.filter(slug=slug).exists():
            raise Conflict(f"environment '{slug}' already exists")
        set_actor(env, actor)
        env.save()
        event_record(tenant=None, resource_type="environment", action="created", actor=actor, key=slug)
    cache.delete(f"env:{slug}")
    from core import invalidation

    invalidation.invalidate(f"env:{slug}")  # processes holding a pk of an older row with this slug
    return env


BUILTIN_ENVIRONMENTS = ("development", "staging", "production")


def environment_update(*, environment: Environment, name: str, actor: str, user_id: int | None = None) -> Environment:
    """Rename an environment (its slug never changes: keys, configs and clients name it)."""
    environment.name = name or environment.slug
    _full_clean(environment)
    with transaction.atomic():
        set_actor(environment, actor, user_id=user_id)
        environment.save()
        event_record(tenant=None, resource_type="environment", action="updated", actor=actor, key=environment.slug,
                     data={"name": environment.name})
    return environment


def environment_delete(*, environment: Environment, actor: str, user_id: int | None = None) -> None:
    """Delete an environment that nothing uses any more.

    Refused (``ValidationFailed``, nothing changed):
    - for the built-in ``development``, ``staging`` and ``production``: migrations,
      the demo data and existing clients assume they exist (as the built-in tenant ``default``);
    - while config entries, flag states, flags (as their default environment) or
      API keys (as their OFREP environment) use it. Deleting would otherwise drop
      flag states (cascade) and unbind keys without any event of theirs: the
      operator deletes or moves those first, each through its own service.
    Otherwise: an ``environment.deleted`` event, the audit actor, and the cached
    slug -> pk dropped everywhere (now and after commit).
    """
    from flags.models import Flag, FlagEnvironment

    slug = environment.slug
    if slug in BUILTIN_ENVIRONMENTS:
        raise ValidationFailed(f"the built-in environment '{slug}' cannot be deleted", code="environment_builtin")
    with transaction.atomic():
        # Locks out concurrent inserts that reference it (their FK check needs a key-share lock).
        if not Environment.objects.select_for_update().filter(pk=environment.pk).exists():
            raise NotFound(f"environment '{slug}' not found")
        uses = {
            "config entries": ConfigEntry.objects.filter(environment=environment).count(),
            "flag states": FlagEnvironment.objects.filter(environment=environment).count(),
            "flags (default environment)": Flag.objects.filter(default_environment=environment).count(),
            "API keys": ApiKey.objects.filter(environment=environment).count(),
        }
        uses = {what: n for what, n in uses.items() if n}
        if uses:
            listed = ", ".join(f"{n} {what}" for what, n in uses.items())
            raise ValidationFailed(
                f"environment '{slug}' is still used by {listed}: delete or move them first",
                details=uses, code="environment_in_use",
            )
        event_record(tenant=None, resource_type="environment", action="deleted", actor=actor, key=slug)
        set_actor(environment, actor, user_id=user_id)
        environment.delete()

    def forget() -> None:
        from core import invalidation

        cache.delete(f"env:{slug}")
        invalidation.invalidate(f"env:{slug}")

    forget()
    transaction.on_commit(forget)


# --- configs --------------------------------------------------------------------


def config_validate(*, key: str, value: Any, is_secret: bool = False) -> None:
    """Validate a value: the stored-JSON rule (depth, size, Unicode), then its key's
    schema (if any); errors carry JSON paths."""
    validate_json_value(value, what=f"value of '{key}'")
    schema = ConfigSchema.objects.filter(key=key).first()
    if schema is not None:
        validate_value(key, schema.schema, value, secret=is_secret)


def _event_data(entry: ConfigEntry, *, value_changed: bool) -> dict[str, Any]:
    # A secret's value never enters an event: only the fact that it changed.
    data: dict[str, Any] = {"id": entry.pk, "is_secret": entry.is_secret, "scope": entry.scope_label}
    if entry.is_secret:
        data["value_changed"] = value_changed
    else:
        data["value"] = entry.value
    return data


def _announce(entry: ConfigEntry, *, action: str, actor: str, value_changed: bool = True) -> None:
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
    cfg_cache.invalidate_keys(entry.tenant_id, [entry.key])


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
    entry = ConfigEntry(
        tenant=tenant, environment=environment, service_name=service_name or "", key=key,
        description=description or "", is_secret=is_secret,
    )
    _set_value(entry, value)
    _full_clean(entry, exclude=["value", "secret_value"])
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
    config_secrecy_check(entry=entry, is_secret=is_secret, can_read_secrets=can_read_secrets)
    current = entry.plain_value
    new_value = current if value is _UNSET else value
    if is_secret is not None:
        entry.is_secret = is_secret
    value_changed = value is not _UNSET and new_value != current
    if description is not None:
        entry.description = description
    _set_value(entry, new_value)
    _full_clean(entry, exclude=["value", "secret_value"])
    config_validate(key=entry.key, value=new_value, is_secret=entry.is_secret)
    with transaction.atomic():
        locked = ConfigEntry.objects.select_for_update().filter(pk=entry.pk).values_list("version", flat=True).first()
        if locked is None:
            raise NotFound("config entry not found")
        if expected_version is not None and locked != expected_version:
            raise StaleVersion(
                f"config entry {entry.pk} is at version {locked}, not {expected_version}",
                details={"current_version": locked},
            )
        entry.version = locked + 1
        set_actor(entry, actor, user_id=user_id, reason=reason)
        entry.save()
        if entry.is_secret:
            # Its plain value from before it became secret may be the secret now:
            # gone from its history and earlier events, in this transaction.
            from events.history import config_history_scrub

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
    with transaction.atomic():
        locked = ConfigEntry.objects.select_for_update().filter(pk=entry.pk).values_list("version", flat=True).first()
        if locked is None:
            raise NotFound("config entry not found")
        if expected_version is not None and locked != expected_version:
            raise StaleVersion(
                f"config entry {entry.pk} is at version {locked}, not {expected_version}",
                details={"current_version": locked},
            )
        _announce(entry, action="deleted", actor=actor)
        set_actor(entry, actor, user_id=user_id)
        entry.delete()


# --- schemas --------------------------------------------------------------------


def _breaking_values(key: str, schema: Any) -> list[dict[str, Any]]:
    broken = []
    for entry in ConfigEntry.objects.filter(key=key).select_related("tenant", "environment"):
        errors = violations(schema, entry.plain_value, secret=entry.is_secret)
        if errors:
            broken.append(
                {
                    "id": entry.pk,
                    "tenant": entry.tenant.slug if entry.tenant_id else None,
                    "environment": entry.environment.slug if entry.environment_id else None,
                    "service_name": entry.service_name or None,
                    "errors": errors,
                }
            )
    return broken


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

    Refused when the schema is not a valid draft 2020-12 schema, when its
    ``default_value`` breaks it, or when existing values of the key would break
    it (the refusal lists those entries and their violations, never a secret).
    """
    validate_json_value(schema, what="schema")
    schema_check(schema)
    if metadata is not None and not isinstance(metadata, dict):
        raise ValidationFailed("metadata must be a JSON object")
    validate_json_value(metadata, what="metadata")
    validate_json_value(default_value, what="default_value")
    if default_value is not None:
        errors = violations(schema, default_value)
        if errors:
            raise ValidationFailed("default_value breaks the schema", details=errors, code="schema_violation")
    broken = _breaking_values(key, schema)
    if broken:
        raise ValidationFailed(
            f"{len(broken)} existing value(s) of '{key}' would break this schema",
            details={"breaking_values": broken},
            code="schema_breaks_existing_values",
        )
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
        _full_clean(obj, exclude=["schema", "metadata", "default_value"])
        set_actor(obj, actor, user_id=user_id)
        obj.save()
        event_record(
            tenant=None, resource_type="schema", action="created" if created else "updated", actor=actor,
            key=key, version=obj.version, data={"required": required},
        )
        # The default value takes part in resolution of every tenant.
        _invalidate_everywhere(key)
    return obj, created


def schema_delete(*, key: str, actor: str, user_id: int | None = None) -> None:
    with transaction.atomic():
        obj = ConfigSchema.objects.filter(key=key).first()
        if obj is None:
            raise NotFound(f"no schema for '{key}'")
        event_record(tenant=None, resource_type="schema", action="deleted", actor=actor, key=key, version=obj.version)
        set_actor(obj, actor, user_id=user_id)
        obj.delete()
        _invalidate_everywhere(key)


def _invalidate_everywhere(key: str) -> None:
    cfg_cache.invalidate_keys(None, [key])


# --- secrets rotation --------------------------------------------------------------


def _encrypted_columns() -> list[tuple[type, list[str]]]:
    """Every (model, encrypted field names) of the project: config secrets, webhook secrets, ..."""
    from django.apps import apps

    from core.fields import EncryptedJSONField

    out = []
    for model in apps.get_models():
        names = [f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedJSONField)]
        if names:
            out.append((model, names))
    return out


def fernet_rotate(*, batch_size: int = 500) -> int:
    """Re-encrypt every encrypted value with the first key of FERNET_KEYS. Returns the count.

    Every model's encrypted columns are rotated (config secrets and webhook
    signing secrets alike), so the old keys can be removed afterwards. Loading
    decrypts with any key; saving encrypts with the first. Values do not change,
    so no version bump and no event. Cached resolutions hold the secret encrypted
    with the key of the time: their generations are bumped, or they would become
    unreadable once the old key is removed.
    """
    count = 0
    for model, names in _encrypted_columns():
        ids = list(model._default_manager.exclude(**{f"{names[0]}__isnull": True}).values_list("pk", flat=True)
                   if len(names) == 1 else model._default_manager.values_list("pk", flat=True))
        for start in range(0, len(ids), batch_size):
            with transaction.atomic():
                rows = model._default_manager.select_for_update().filter(pk__in=ids[start : start + batch_size])
                touched: dict[int | None, set[str]] = {}
                for row in rows.only("pk", *names, *(["tenant_id", "key"] if model is ConfigEntry else [])):
                    model._default_manager.filter(pk=row.pk).update(**{n: getattr(row, n) for n in names})
                    count += 1
                    if model is ConfigEntry:
                        touched.setdefault(row.tenant_id, set()).add(row.key)
                for tenant_id, keys in touched.items():
                    cfg_cache.invalidate_keys(tenant_id, keys)
    return count


# --- API keys -----------------------------------------------------------------------


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
    raw = f"chk_{prefix}_{pysecrets.token_urlsafe(32)}"
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
    transaction.on_commit(lambda: _forget_key(api_key.key_hash))
    _forget_key(api_key.key_hash)
    return api_key


def _forget_key(key_hash: str) -> None:
    """Drop a key's cached principal everywhere: Redis and every process."""
    from core import invalidation

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
    transaction.on_commit(lambda: _forget_key(key_hash))
    _forget_key(key_hash)


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
    transaction.on_commit(lambda: _forget_key(api_key.key_hash))
    return api_key




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
