"""Reads of change requests and policies, shaped for the API and the admin."""
from __future__ import annotations

from typing import Any

from core.errors import NotFound
from tenants.models import Environment, Tenant

from .changeset import affected_services, diff_of
from .models import ChangeRequest
from .policies import policy_effective, policy_global, policy_of_request


def change_request_for_tenant(*, tenant_id: int, change_request_id: int) -> ChangeRequest:
    """A request of the caller's tenant (404 for any other tenant's, as for none)."""
    cr = (ChangeRequest.objects.select_related("tenant", "environment").prefetch_related("reviews")
          .filter(pk=change_request_id, tenant_id=tenant_id).first())
    if cr is None:
        raise NotFound("change request not found")
    return cr


def change_request_get(*, change_request_id) -> ChangeRequest | None:
    """Any tenant's request by id (the admin: operators see every tenant), or None."""
    if not str(change_request_id).isdigit():
        return None
    return (ChangeRequest.objects.select_related("tenant", "environment").prefetch_related("reviews")
            .filter(pk=int(change_request_id)).first())


def change_requests_of(*, tenant: Tenant, status: str | None = None, environment: Environment | None = None):
    qs = ChangeRequest.objects.filter(tenant_id=tenant.pk).select_related("tenant", "environment").prefetch_related("reviews")
    if status:
        qs = qs.filter(status=status)
    if environment is not None:
        qs = qs.filter(environment_id=environment.pk)
    return qs.order_by("-id")


def _changes_out(cr: ChangeRequest, *, reveal: bool) -> list[dict]:
    secrets = cr.secret_values or {}
    out = []
    for index, change in enumerate(cr.changes):
        row = dict(change)
        if str(index) in secrets:
            if reveal:
                row["value"] = secrets[str(index)]
            else:
                row["value"], row["masked"] = None, True
        out.append(row)
    return out


def change_request_review(cr: ChangeRequest, *, reveal: bool) -> dict[str, Any]:
    """What a reviewer looks at: per change old and new (secrets masked), and per
    service the resolved values that would change. For a request no longer live,
    the diff against today's state means little: it is left out."""
    if cr.status not in ChangeRequest.LIVE:
        return {"diff": [], "affected_services": []}
    secrets = cr.secret_values or {}
    return {
        "diff": diff_of(tenant=cr.tenant, environment=cr.environment, changes=cr.changes, secrets=secrets, reveal=reveal),
        "affected_services": affected_services(tenant=cr.tenant, environment=cr.environment, changes=cr.changes,
                                               secrets=secrets, reveal=reveal),
    }


def change_request_out(cr: ChangeRequest, *, reveal: bool = False, review: bool = True) -> dict[str, Any]:
    """API.md's answer: the request, ``approvals``, and (``review``) ``diff`` and ``affected_services``."""
    reviews = list(cr.reviews.all())
    policy = policy_of_request(tenant=cr.tenant, environment=cr.environment, changes=cr.changes)
    out = {
        "id": cr.pk,
        "tenant": cr.tenant.slug,
        "environment": cr.environment.slug,
        "title": cr.title,
        "description": cr.description,
        "status": cr.status,
        "author": cr.author,
        "revision": cr.revision,
        "apply_at": cr.apply_at,
        "applied_at": cr.applied_at,
        "applied_by": cr.applied_by or None,
        "created_at": cr.created_at,
        "updated_at": cr.updated_at,
        "changes": _changes_out(cr, reveal=reveal),
        "approvals": [r.actor for r in reviews if r.decision == "approve" and r.revision == cr.revision],
        "declined_by": [r.actor for r in reviews if r.decision == "decline"],
        "reviews": [{"actor": r.actor, "decision": r.decision, "revision": r.revision, "comment": r.comment,
                     "created_at": r.created_at} for r in reviews],
        "policy": policy.as_dict(),
        "conflicts": cr.conflicts,
    }
    if review:
        out.update(change_request_review(cr, reveal=reveal))
    return out


def policy_out(*, tenant: Tenant, environment: Environment) -> dict[str, Any]:
    policy = policy_effective(tenant=tenant, environment=environment)
    return {"environment": environment.slug, **policy.as_dict(), "protected": policy.protected,
            "global_default": policy_global(environment=environment).as_dict()}
