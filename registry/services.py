"""Registry writes: register, drain/restore, deregister, and a service's own fields.

Heartbeats are in ``heartbeats.py``, the stale sweep in ``sweep.py``, the active
health checks in ``checks.py`` and the service-token secrets in ``tokens.py``.
"""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from core.audit import set_actor
from core.errors import NotFound, ValidationFailed
from core.jsonvalue import validate_json_value
from core.validators import url_check
from events.services import event_record
from tenants.models import Tenant

from .models import HEALTHY, OUT_OF_SERVICE, STARTING, UNHEALTHY, Instance, Service
from .selectors import discovery_changed, instance_state_forget, instance_tenant_forget

# The statuses an instance may report for itself (register, heartbeat).
REPORTABLE = (HEALTHY, UNHEALTHY, STARTING)


def instance_status_event(instance: Instance, *, old: str, new: str, actor: str, reason: str) -> None:
    """Record one instance's change of status (``instance.status_changed``), in the caller's transaction."""
    event_record(
        tenant=instance.service.tenant, resource_type="instance", action="status_changed", actor=actor,
        key=instance.service.name, service_name=instance.service.name,
        data={"id": instance.pk, "url": instance.url, "from": old, "to": new, "reason": reason},
    )


def instance_register(
    *, tenant: Tenant, service_name: str, url: str, health_check_url: str = "", metadata: dict | None = None,
    status: str = HEALTHY, actor: str,
) -> tuple[Instance, bool]:
    """Register an instance; the same URL again refreshes it and keeps its id. Returns (instance, created)."""
    if status not in REPORTABLE:
        raise ValidationFailed(f"status must be one of {', '.join(REPORTABLE)}")
    url_check(url, "service_url")
    if health_check_url:
        url_check(health_check_url, "health_check_url")
    validate_json_value(metadata, what="metadata")
    now = timezone.now()
    with transaction.atomic():
        service, _ = Service.objects.get_or_create(tenant=tenant, name=service_name)
        instance = Instance.objects.select_for_update().filter(service=service, url=url).first()
        created = instance is None
        old = None if created else instance.status
        if created:
            instance = Instance(service=service, url=url)
        instance.health_check_url = health_check_url or ""
        instance.metadata = metadata or {}
        instance.last_heartbeat = now
        instance.registered_by = actor
        # A drained instance stays drained until an operator restores it.
        if old != OUT_OF_SERVICE:
            instance.status = status
        instance.check_failures = instance.check_successes = 0
        instance.save()
        instance.service = service
        service.tenant = tenant
        # Caches before the event: after commit, callbacks run in registration order,
        # and a listener woken by the event must discover the new state.
        discovery_changed([(tenant.pk, service_name)])
        instance_state_forget(instance.pk)
        event_record(
            tenant=tenant, resource_type="instance", action="registered" if created else "refreshed", actor=actor,
            key=service_name, service_name=service_name,
            data={"id": instance.pk, "url": url, "status": instance.status, "metadata": instance.metadata},
        )
    return instance, created



def instance_set_status(*, instance: Instance, status: str, actor: str, user_id: int | None = None) -> Instance:
    """An operator's drain (``out_of_service``) or restore (``healthy``)."""
    if status not in (OUT_OF_SERVICE, HEALTHY):
        raise ValidationFailed("operators drain (out_of_service) or restore (healthy)")
    with transaction.atomic():
        locked = Instance.objects.select_for_update().select_related("service__tenant").get(pk=instance.pk)
        old = locked.status
        if old == status:
            return locked
        locked.status = status
        if status == HEALTHY:
            # Restored: it gets a full TTL to beat before the sweep judges it.
            locked.last_heartbeat = timezone.now()
        locked.save(update_fields=["status", "last_heartbeat"])
        discovery_changed([(locked.service.tenant_id, locked.service.name)])  # caches before the event
        instance_state_forget(locked.pk)
        instance_status_event(locked, old=old, new=status, actor=actor, reason="drained" if status == OUT_OF_SERVICE else "restored")
    return locked


def instance_drain(*, instance: Instance, actor: str, user_id: int | None = None) -> Instance:
    return instance_set_status(instance=instance, status=OUT_OF_SERVICE, actor=actor, user_id=user_id)


def instance_restore(*, instance: Instance, actor: str, user_id: int | None = None) -> Instance:
    return instance_set_status(instance=instance, status=HEALTHY, actor=actor, user_id=user_id)


def instance_deregister(*, instance_id: int, tenant_id: int | None, actor: str) -> None:
    with transaction.atomic():
        qs = Instance.objects.select_related("service__tenant").filter(pk=instance_id)
        if tenant_id is not None:
            qs = qs.filter(service__tenant_id=tenant_id)
        instance = qs.first()
        if instance is None:
            raise NotFound("instance not found")
        instance_tenant_forget(instance.pk)
        instance_state_forget(instance.pk)
        discovery_changed([(instance.service.tenant_id, instance.service.name)])  # before the event, as above
        event_record(
            tenant=instance.service.tenant, resource_type="instance", action="deregistered", actor=actor,
            key=instance.service.name, service_name=instance.service.name, data={"id": instance.pk, "url": instance.url},
        )
        instance.delete()


def service_delete(*, service: Service, actor: str) -> int:
    """Remove a service and its instances: each instance is announced as deregistered
    and discovery forgets the service. Returns how many instances went with it."""
    with transaction.atomic():
        ids = list(Instance.objects.filter(service=service).order_by("id").values_list("pk", flat=True))
        for instance_id in ids:
            instance_deregister(instance_id=instance_id, tenant_id=service.tenant_id, actor=actor)
        Service.objects.filter(pk=service.pk).delete()
        discovery_changed([(service.tenant_id, service.name)])
    return len(ids)


def service_update(*, service: Service, owner: str | None = None, description: str | None = None, actor: str,
                   user_id: int | None = None) -> Service:
    if owner is not None:
        service.owner = owner
    if description is not None:
        service.description = description
    with transaction.atomic():
        set_actor(service, actor, user_id=user_id)
        service.save()
    return service

