"""Segment writes: create or replace by (tenant, name), delete while unused."""
from __future__ import annotations

from django.db import transaction

from core.audit import set_actor
from core.errors import NotFound, ValidationFailed
from events.services import event_record
from tenants.guard import write_check
from tenants.models import Tenant

from ..models import FlagEnvironment, Segment
from ..validation import segment_validate
from .common import generation_bump


def segment_set(*, tenant: Tenant, name: str, constraints: list, description: str = "", actor: str,
                user_id: int | None = None, strict: bool = True) -> Segment:
    """Create or replace the segment ``name`` of a tenant (``strict=False``: the
    Unleash import, unknown constraint operators kept)."""
    write_check(tenant=tenant, environment=None, resource="segment", action="update", key=name,
                actor=actor, user_id=user_id)
    segment_validate(name=name, constraints=constraints, strict=strict)
    with transaction.atomic():
        seg = Segment.objects.filter(tenant=tenant, name=name).first() or Segment(tenant=tenant, name=name)
        seg.constraints, seg.description = constraints, description or seg.description
        set_actor(seg, actor, user_id=user_id)
        seg.save()
        generation_bump(tenant.pk)  # before the event: see flags.services.flags._announce
        event_record(tenant=tenant, resource_type="segment", action="updated", actor=actor, key=name)
    return seg


def segment_delete(*, segment: Segment, actor: str, user_id: int | None = None) -> None:
    """Delete a segment that no flag state uses.

    Refused (``ValidationFailed``, nothing changed) while a strategy of any flag
    state names it; the message lists them (``flag@environment``). Dropping the
    segment from those strategies instead would silently widen who gets the
    flag, so the operator edits those strategies first. Otherwise: a
    ``segment.deleted`` event, the audit actor, and the tenant's flag generation
    bumped after commit so every process recompiles without it.
    """
    write_check(tenant=segment.tenant, environment=None, resource="segment", action="delete", key=segment.name,
                actor=actor, user_id=user_id)
    with transaction.atomic():
        seg = Segment.objects.select_for_update().select_related("tenant").filter(pk=segment.pk).first()
        if seg is None:
            raise NotFound("segment not found")
        users = sorted(
            f"{fe.flag.name}@{fe.environment.slug}"
            for fe in FlagEnvironment.objects.filter(flag__tenant_id=seg.tenant_id).select_related("flag", "environment")
            if any(seg.pk in (s.get("segments") or []) for s in fe.strategies or [] if isinstance(s, dict))
        )
        if users:
            raise ValidationFailed(
                f"segment '{seg.name}' is used by {len(users)} flag state(s): {', '.join(users[:10])}"
                + (" ..." if len(users) > 10 else "") + "; remove it from their strategies first",
                details={"used_by": users}, code="segment_in_use",
            )
        generation_bump(seg.tenant_id)  # before the event: see flags.services.flags._announce
        event_record(tenant=seg.tenant, resource_type="segment", action="deleted", actor=actor, key=seg.name,
                     data={"id": seg.pk})
        set_actor(seg, actor, user_id=user_id)
        seg.delete()
