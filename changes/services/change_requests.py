"""Change requests: create, edit, review, apply (now or scheduled), cancel, refresh.

States (docs/change-requests.md): ``draft`` → ``open`` → ``approved`` (enough
approvals under the environment's policy; ``scheduled`` when it carries
``apply_at``) → ``applied``. ``declined`` (one decline blocks), ``cancelled`` and
``applied`` are final; ``conflicted`` (a target changed since the request was
opened) goes back to ``open`` by :func:`change_request_refresh`.

Every transition takes the request's row lock (``SELECT … FOR UPDATE``), so two
reviewers, two appliers or two beat workers serialise on it and only the first
sees the state it expects.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from simple_history.signals import pre_create_historical_record

from core.errors import Conflict, DomainError, NotFound, ValidationFailed
from core.logging import register_secret
from events.services import event_record
from flags.models import Flag
from flags.services.flags import flag_create, flag_update
from tenants.models import ConfigEntry, Environment, Tenant
from tenants.services.configs import config_create, config_delete, config_update
from tenants.services.schemas import schema_delete, schema_set

from ..approvers import change_request_approver_check
from ..changeset import (
    CONFIG_DELETE,
    FLAG_SET,
    SCHEMA_DELETE,
    SCHEMA_SET,
    base_of,
    changes_validate,
    config_target,
    conflicts_of,
    flag_target,
    target_of,
)
from ..models import ChangeRequest, Review
from ..policies import policy_of_request
from ..protection import applying, applying_reason
from ..signals import change_request_applied

_UNSET: Any = object()
CR = ChangeRequest


def _announce(cr: ChangeRequest, action: str, *, actor: str, extra: dict | None = None) -> None:
    # Never a value in the event: the targets only (secrets are safe by construction).
    event_record(
        tenant=cr.tenant, resource_type="change_request", action=action, actor=actor, key=str(cr.pk),
        environment=cr.environment.slug, version=cr.revision,
        data={"id": cr.pk, "title": cr.title, "status": cr.status, "author": cr.author,
              "apply_at": cr.apply_at.isoformat() if cr.apply_at else None,
              "targets": ["/".join(str(p) for p in target_of(c)) for c in cr.changes], **(extra or {})},
    )


def _locked(change_request_id: int, *, skip_locked: bool = False) -> ChangeRequest | None:
    return (ChangeRequest.objects.select_for_update(skip_locked=skip_locked, of=("self",))
            .select_related("tenant", "environment").filter(pk=change_request_id).first())


def _lock(change_request: ChangeRequest) -> ChangeRequest:
    cr = _locked(change_request.pk)
    if cr is None:
        raise NotFound("change request not found")
    return cr


def _future(apply_at: datetime | None) -> datetime | None:
    if apply_at is not None and apply_at <= timezone.now():
        raise ValidationFailed("apply_at is in the past", code="apply_at_in_past",
                               details={"apply_at": ["must be in the future"]})
    return apply_at


def _refuse(cr: ChangeRequest, doing: str, code: str = "invalid_state") -> Conflict:
    return Conflict(f"change request #{cr.pk} is {cr.status}: it cannot be {doing}", code=code,
                    details={"status": cr.status})


def approvals_of(cr: ChangeRequest) -> list[Review]:
    return [r for r in cr.reviews.all() if r.decision == Review.APPROVE and r.revision == cr.revision]


def _settle(cr: ChangeRequest, *, actor: str) -> None:
    """Put a live request in the state its approvals and ``apply_at`` say (open,
    approved or scheduled), announcing that it is scheduled."""
    if cr.status not in (CR.OPEN, CR.APPROVED, CR.SCHEDULED):
        return
    policy = policy_of_request(tenant=cr.tenant, environment=cr.environment, changes=cr.changes)
    enough = len(approvals_of(cr)) >= policy.approvals_required
    was = cr.status
    cr.status = (CR.SCHEDULED if cr.apply_at else CR.APPROVED) if enough else CR.OPEN
    cr.save()
    if cr.status == CR.SCHEDULED and was != CR.SCHEDULED:
        _announce(cr, "scheduled", actor=actor)


def _store_secrets(cr: ChangeRequest, secrets: dict) -> None:
    cr.secret_values = secrets or None
    for value in secrets.values():
        if isinstance(value, str):
            register_secret(value)


def change_request_create(
    *,
    tenant: Tenant,
    environment: Environment,
    title: str,
    changes: list[dict],
    actor: str,
    user_id: int | None = None,
    apply_at: datetime | None = None,
    description: str = "",
    draft: bool = False,
) -> ChangeRequest:
    """Open a request (or keep it a ``draft``) of ``changes`` (API.md's change format) to one tenant and environment.

    Each change is validated now (the key's schema too) and its target's version
    recorded: applying refuses if any target changed in between."""
    title = (title or "").strip()
    if not title or len(title) > 200:
        raise ValidationFailed("a change request needs a title (at most 200 characters)", details={"title": ["required"]})
    stored, secrets = changes_validate(tenant=tenant, environment=environment, changes=changes)
    cr = ChangeRequest(tenant=tenant, environment=environment, title=title, description=description or "",
                       status=CR.DRAFT if draft else CR.OPEN, changes=stored, author=actor, author_user_id=user_id,
                       apply_at=_future(apply_at))
    _store_secrets(cr, secrets)
    with transaction.atomic():
        cr.base = base_of(tenant=tenant, environment=environment, changes=stored)
        cr.save()
        if not draft:
            _announce(cr, "opened", actor=actor)
            _settle(cr, actor=actor)
    return cr


def change_request_update(
    *,
    change_request: ChangeRequest,
    actor: str,
    user_id: int | None = None,
    title: str | None = None,
    description: str | None = None,
    changes: list[dict] | None = None,
    apply_at: Any = _UNSET,
    open_it: bool = False,
) -> ChangeRequest:
    """Edit a live request. New changes or a new ``apply_at`` clear its approvals
    (they approved something else) and take the targets' versions again; a
    scheduled request moved or unscheduled loses its old time at once."""
    with transaction.atomic():
        cr = _lock(change_request)
        if cr.status not in (CR.DRAFT, CR.OPEN, CR.APPROVED, CR.SCHEDULED):
            raise _refuse(cr, "edited")
        if title is not None:
            if not title.strip() or len(title) > 200:
                raise ValidationFailed("a title of 1 to 200 characters", details={"title": ["invalid"]})
            cr.title = title.strip()
        if description is not None:
            cr.description = description
        substantive = False
        if changes is not None:
            stored, secrets = changes_validate(tenant=cr.tenant, environment=cr.environment, changes=changes)
            cr.changes = stored
            _store_secrets(cr, secrets)
            cr.base = base_of(tenant=cr.tenant, environment=cr.environment, changes=stored)
            substantive = True
        if apply_at is not _UNSET:
            cr.apply_at = _future(apply_at)
            substantive = True
        if substantive:
            cr.revision += 1
            cr.reviews.filter(decision=Review.APPROVE).delete()
            if cr.status in (CR.APPROVED, CR.SCHEDULED):
                cr.status = CR.OPEN
        opened = open_it and cr.status == CR.DRAFT
        if opened:
            cr.status = CR.OPEN
            cr.base = base_of(tenant=cr.tenant, environment=cr.environment, changes=cr.changes)
        cr.save()
        if opened:
            _announce(cr, "opened", actor=actor)
        _settle(cr, actor=actor)
    return cr


def change_request_approve(*, change_request: ChangeRequest, actor: str, user_id: int | None = None,
                           principal: Any = None, user: Any = None, comment: str = "") -> ChangeRequest:
    """Approve the request's current revision (403 for who may not approve, the
    author where the policy forbids it; 409 approving twice or a request not open)."""
    change_request_approver_check(change_request=change_request, principal=principal, user=user)
    with transaction.atomic():
        cr = _lock(change_request)
        if cr.status not in (CR.OPEN, CR.APPROVED, CR.SCHEDULED):
            raise _refuse(cr, "approved")
        policy = policy_of_request(tenant=cr.tenant, environment=cr.environment, changes=cr.changes)
        if actor == cr.author and not policy.author_may_approve:
            raise Conflict(f"the policy of {cr.environment.slug} forbids approving one's own change request",
                           code="author_may_not_approve")
        if cr.reviews.filter(actor=actor).exists():
            raise Conflict(f"{actor} has already reviewed change request #{cr.pk}", code="already_reviewed")
        Review.objects.create(change_request=cr, decision=Review.APPROVE, actor=actor, user_id=user_id,
                              revision=cr.revision, comment=comment or "")
        _settle(cr, actor=actor)
        # Every approval is announced, with how many the policy needs.
        _announce(cr, "approved", actor=actor, extra={"approvals": len(approvals_of(cr)),
                                                      "approvals_required": policy.approvals_required})
    return cr


def change_request_decline(*, change_request: ChangeRequest, actor: str, user_id: int | None = None,
                           principal: Any = None, user: Any = None, comment: str = "") -> ChangeRequest:
    """One decline blocks the request for good (a new request starts over)."""
    change_request_approver_check(change_request=change_request, principal=principal, user=user)
    with transaction.atomic():
        cr = _lock(change_request)
        if cr.status not in (CR.OPEN, CR.APPROVED, CR.SCHEDULED, CR.CONFLICTED):
            raise _refuse(cr, "declined")
        if cr.reviews.filter(actor=actor, decision=Review.DECLINE).exists():
            raise Conflict(f"{actor} has already declined change request #{cr.pk}", code="already_reviewed")
        cr.reviews.filter(actor=actor).delete()
        Review.objects.create(change_request=cr, decision=Review.DECLINE, actor=actor, user_id=user_id,
                              revision=cr.revision, comment=comment or "")
        cr.status, cr.apply_at = CR.DECLINED, None
        cr.save()
        _announce(cr, "declined", actor=actor, extra={"comment": comment or ""})
    return cr


def change_request_cancel(*, change_request: ChangeRequest, actor: str, user_id: int | None = None) -> ChangeRequest:
    """Withdraw a live request; a scheduled one loses its time."""
    with transaction.atomic():
        cr = _lock(change_request)
        if cr.status not in CR.LIVE:
            raise _refuse(cr, "cancelled")
        cr.status, cr.apply_at = CR.CANCELLED, None
        cr.save()
        _announce(cr, "cancelled", actor=actor)
    return cr


def change_request_refresh(*, change_request: ChangeRequest, actor: str, user_id: int | None = None) -> ChangeRequest:
    """Re-base a conflicted (or open) request on the targets as they are now: it
    opens again, its approvals cleared (the reviewers approved another base)."""
    with transaction.atomic():
        cr = _lock(change_request)
        if cr.status not in (CR.CONFLICTED, CR.OPEN, CR.APPROVED, CR.SCHEDULED):
            raise _refuse(cr, "refreshed")
        # The changes are validated again: the key's schema may have changed too.
        secrets = cr.secret_values or {}
        raw = [{**c, "value": secrets[str(i)]} if str(i) in secrets else c for i, c in enumerate(cr.changes)]
        cr.changes, new_secrets = changes_validate(tenant=cr.tenant, environment=cr.environment, changes=raw)
        _store_secrets(cr, new_secrets)
        cr.base = base_of(tenant=cr.tenant, environment=cr.environment, changes=cr.changes)
        cr.conflicts, cr.status, cr.revision = [], CR.OPEN, cr.revision + 1
        if cr.apply_at and cr.apply_at <= timezone.now():
            cr.apply_at = None
        cr.reviews.filter(decision=Review.APPROVE).delete()
        cr.save()
        _announce(cr, "opened", actor=actor, extra={"refreshed": True})
        _settle(cr, actor=actor)
    return cr


def _write(cr: ChangeRequest, index: int, change: dict, *, actor: str) -> None:
    tenant, env = cr.tenant, cr.environment
    if change["type"] == FLAG_SET:
        flag, _state = flag_target(tenant, env, change)
        fields = {k: change[k] for k in ("is_enabled", "rollout_percentage", "strategies", "description", "kind",
                                         "variants", "dependencies") if k in change}
        if flag is None:
            flag_create(tenant=tenant, name=change["name"], environment=env,
                        is_enabled=bool(fields.pop("is_enabled", False)), actor=actor, **fields)
        else:
            flag_update(flag=Flag.objects.select_related("tenant", "default_environment").get(pk=flag.pk),
                        environment=env, actor=actor, **fields)
        return
    if change["type"] == SCHEMA_SET:
        schema_set(key=change["key"], schema=change["schema"], metadata=change.get("metadata"),
                   required=bool(change.get("required")), default_value=change.get("default_value"), actor=actor)
        return
    if change["type"] == SCHEMA_DELETE:
        schema_delete(key=change["key"], actor=actor)
        return
    entry = config_target(tenant, env, change)
    if change["type"] == CONFIG_DELETE:
        if entry is not None:
            config_delete(entry=entry, actor=actor)
        return
    value = (cr.secret_values or {}).get(str(index), change.get("value"))
    if entry is None:
        config_create(tenant=tenant, key=change["key"], value=value, environment=env,
                      service_name=change.get("service_name") or "", is_secret=bool(change.get("is_secret")), actor=actor)
    else:
        # The request was reviewed with the secrecy it shows: applying it is the
        # reviewers' decision to make a secret plain, if it says so.
        config_update(entry=ConfigEntry.objects.select_related("tenant", "environment").get(pk=entry.pk),
                      value=value, is_secret=bool(change.get("is_secret")), actor=actor, can_read_secrets=True)


def _reason(cr: ChangeRequest) -> str:
    approvers = ", ".join(r.actor for r in approvals_of(cr)) or "none needed"
    return f"change request #{cr.pk} by {cr.author}, approved by {approvers}"[:100]


def change_request_apply(*, change_request: ChangeRequest | None = None, change_request_id: int | None = None,
                         actor: str, user_id: int | None = None, due_only: bool = False) -> ChangeRequest | None:
    """Write every change of an approved request in one transaction: all or nothing.

    The config and flag services do the writing (validated, versioned, audited,
    announced), each history row carrying the reason "change request #N by
    <author>, approved by <approvers>" and each event the actor "<applier> via
    change request #N". A target changed since the request was opened, or a change
    its service refuses now (a schema changed), writes nothing: the request becomes
    ``conflicted`` (announced) and the caller gets 409 ``change_request_conflicted``.

    ``due_only`` (the beat): skip a request another worker holds, and apply only a
    request still ``scheduled`` and due; returns None when there was nothing to do.
    """
    pk = change_request.pk if change_request is not None else change_request_id
    failure: DomainError | None = None
    with transaction.atomic():
        cr = _locked(pk, skip_locked=due_only)
        if cr is None:
            if due_only:
                return None
            raise NotFound("change request not found")
        if due_only and (cr.status != CR.SCHEDULED or cr.apply_at is None or cr.apply_at > timezone.now()):
            return None
        if cr.status not in (CR.APPROVED, CR.SCHEDULED):
            code = {CR.DECLINED: "change_request_declined", CR.CONFLICTED: "change_request_conflicted",
                    CR.APPLIED: "already_applied", CR.CANCELLED: "change_request_cancelled"}
            raise _refuse(cr, "applied", code=code.get(cr.status, "change_request_not_approved"))
        policy = policy_of_request(tenant=cr.tenant, environment=cr.environment, changes=cr.changes)
        approvals = approvals_of(cr)
        conflicts = []
        if len(approvals) < policy.approvals_required:
            # The policy was tightened after the approvals: back to review (committed below).
            cr.status = CR.OPEN
            cr.save()
            failure = Conflict(f"change request #{cr.pk} needs {policy.approvals_required} approval(s) under the "
                               f"policy of {cr.environment.slug} now, has {len(approvals)}", code="change_request_not_approved")
        else:
            conflicts = conflicts_of(tenant=cr.tenant, environment=cr.environment, changes=cr.changes, base=cr.base)
        if failure is None and not conflicts:
            via = f"{actor} via change request #{cr.pk}"[:150]
            try:
                with transaction.atomic(), applying(tenant_id=cr.tenant_id, reason=_reason(cr)):
                    for index, change in enumerate(cr.changes):
                        _write(cr, index, change, actor=via)
                    cr.status, cr.applied_at, cr.applied_by = CR.APPLIED, timezone.now(), actor
                    cr.save()
                    _announce(cr, "applied", actor=actor,
                              extra={"approvers": [r.actor for r in approvals], "applied_by": actor})
                    change_request_applied.send(sender=ChangeRequest, change_request=cr, actor=actor)
            except DomainError as exc:
                conflicts = [{"index": None, "target": None, "message": exc.message, "code": exc.code}]
        if conflicts:
            cr.status, cr.conflicts, cr.apply_at = CR.CONFLICTED, conflicts, None
            cr.save()
            _announce(cr, "conflicted", actor=actor, extra={"conflicts": [c["target"] or c["message"] for c in conflicts]})
            failure = Conflict(f"change request #{cr.pk} conflicts with changes made since it was opened: "
                               "refresh it (POST .../refresh) and have it reviewed again",
                               code="change_request_conflicted", details={"conflicts": conflicts})
    if failure is not None and not due_only:
        raise failure
    return cr


def change_requests_apply_due(*, actor: str = "system:beat") -> int:
    """The beat: apply every scheduled request that is due, each once (a worker
    skips a row another holds; the status then tells it is done). A conflict
    marks the request conflicted and announces it; the others go on."""
    due = list(ChangeRequest.objects.filter(status=CR.SCHEDULED, apply_at__lte=timezone.now())
               .order_by("apply_at").values_list("pk", flat=True)[:100])
    applied = 0
    for pk in due:
        cr = change_request_apply(change_request_id=pk, actor=actor, due_only=True)
        if cr is not None and cr.status == CR.APPLIED:
            applied += 1
    return applied


def _history_reason(sender, instance, history_instance, **kwargs) -> None:
    reason = applying_reason()
    if reason and not history_instance.history_change_reason:
        history_instance.history_change_reason = reason


pre_create_historical_record.connect(_history_reason, dispatch_uid="changes.history_reason")
