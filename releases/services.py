"""Release writes: create (by hand, or after an applied change request), pin, unpin.

A release is never changed once written (``Release.save`` refuses); a pin is the
only mutable thing here. Every write records its event in its transaction, after
the caches it affects are invalidated (after-commit callbacks run in the order
registered: a client woken by ``release.pinned`` must read the pinned values).
"""
from __future__ import annotations

import unicodedata

from django.db import IntegrityError, connection, transaction

from core.audit import set_actor
from core.errors import Conflict, NotFound, ValidationFailed
from events.services import event_record
from tenants.guard import write_check
from tenants.models import Environment, Tenant, service_validator

from .models import RELEASE_NAME_MAX, Pin, Release
from .selectors import pins_publish
from .snapshot import snapshot_build


def release_name_check(name: object) -> str:
    """A release's name: 1 to 200 printable characters (it travels in events, webhooks and the admin)."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationFailed("a release needs a name", details={"name": ["required"]})
    name = name.strip()
    if len(name) > RELEASE_NAME_MAX:
        message = f"a release name has at most {RELEASE_NAME_MAX} characters"
        raise ValidationFailed(message, details={"name": [message]})
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in name):
        message = "a release name may not hold control or format characters"
        raise ValidationFailed(message, details={"name": [message]})
    return name


def release_create(*, tenant: Tenant, environment: Environment, name: str, actor: str,
                   user_id: int | None = None) -> Release:
    """Snapshot ``tenant`` in ``environment`` as a new release; 409 when the name is taken there."""
    name = release_name_check(name)
    outer = connection.in_atomic_block
    try:
        with transaction.atomic():
            # Some tens of queries read at one instant: on PostgreSQL, outside any
            # outer transaction, REPEATABLE READ (its first statement). Inside one (a
            # change request being applied) the caller's transaction sees its own
            # writes, which is the state the release must capture.
            if not outer and connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            snapshot = snapshot_build(tenant=tenant, environment=environment)
            with transaction.atomic():  # a savepoint: a taken name leaves the outer transaction usable
                release = Release(tenant=tenant, environment=environment, name=name, digest=snapshot.digest,
                                  content=snapshot.content, secrets=snapshot.secrets, created_by=actor)
                release.save()
            event_record(tenant=tenant, resource_type="release", action="created", actor=actor, key=name,
                         environment=environment.slug,
                         data={"id": release.pk, "name": name, "digest": release.digest})
    except IntegrityError as exc:
        raise Conflict(f"a release named '{name}' exists already in {environment.slug}") from exc
    return release


def _service_check(service_name: str) -> str:
    if not service_name:
        raise ValidationFailed("name the service to pin", details={"service_name": ["required"]})
    try:
        service_validator(service_name)
    except Exception as exc:  # noqa: BLE001 - Django's ValidationError: the message is the rule
        message = "a service name is letters, digits, '_', '.' or '-' (at most 100 characters)"
        raise ValidationFailed(message, details={"service_name": [message]}) from exc
    return service_name


def _announce(release: Release, *, action: str, actor: str, service_name: str, data: dict) -> None:
    # Caches first (see the module docstring), then the event in the same transaction.
    transaction.on_commit(pins_publish)
    event_record(tenant=release.tenant, resource_type="release", action=action, actor=actor, key=release.name,
                 environment=release.environment.slug, service_name=service_name,
                 data={"id": release.pk, "name": release.name, "digest": release.digest, **data})


def release_pin(*, release: Release, service_name: str, actor: str, user_id: int | None = None) -> Pin:
    """Answer ``service_name``'s config reads in the release's tenant and environment from
    the release until unpinned (a pin to another release of that environment is replaced)."""
    service_name = _service_check(service_name)
    # What a service reads changes: the write gate's rules (protection, roles) decide.
    write_check(tenant=release.tenant, environment=release.environment, resource="pin", action="update",
                key=release.name, actor=actor, user_id=user_id, service_name=service_name)
    with transaction.atomic():
        pin = (Pin.objects.select_for_update()
               .filter(tenant=release.tenant, environment=release.environment, service_name=service_name).first())
        previous = pin.release_id if pin else None
        if pin is None:
            pin = Pin(tenant=release.tenant, environment=release.environment, service_name=service_name)
        pin.release = release
        set_actor(pin, actor, user_id=user_id)
        try:
            with transaction.atomic():
                pin.save()
        except IntegrityError as exc:  # a concurrent first pin of the same service
            raise Conflict(f"'{service_name}' was pinned meanwhile: try again") from exc
        _announce(release, action="pinned", actor=actor, service_name=service_name, data={"previous": previous})
    return pin


def release_unpin(*, release: Release, service_name: str, actor: str, user_id: int | None = None) -> None:
    """Back to live reads for ``service_name``; 404 unless it is pinned to this release."""
    write_check(tenant=release.tenant, environment=release.environment, resource="pin", action="delete",
                key=release.name, actor=actor, user_id=user_id, service_name=service_name)
    with transaction.atomic():
        pin = Pin.objects.select_for_update().filter(release=release, service_name=service_name).first()
        if pin is None:
            raise NotFound(f"'{service_name}' is not pinned to release {release.pk}")
        set_actor(pin, actor, user_id=user_id)
        pin.delete()
        _announce(release, action="unpinned", actor=actor, service_name=service_name, data={})


def release_after_change_request(*, tenant: Tenant, environment: Environment, change_request_id: int, actor: str,
                                 user_id: int | None = None) -> Release:
    """The release every applied change request makes (named after it), in the applying
    transaction when called from it: the release holds exactly what was applied."""
    return release_create(tenant=tenant, environment=environment, name=f"change request #{change_request_id}",
                          actor=actor, user_id=user_id)
