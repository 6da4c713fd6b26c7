"""Protection policies: the global default of an environment and a tenant's tightening.

The global default of an environment is its row with ``tenant`` NULL (edited in
the admin), else ``CHANGE_PROTECTED_ENVIRONMENTS`` (one approval, not by the
author), else "not protected". A tenant's own row may ask for more approvals or
forbid the author's approval; it can never ask for less than the default (400).
"""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from core.errors import ValidationFailed
from tenants.models import Environment, Tenant

from .changeset import has_schema_changes
from .models import EnvironmentPolicy


@dataclass(frozen=True)
class Policy:
    approvals_required: int
    author_may_approve: bool

    @property
    def protected(self) -> bool:
        return self.approvals_required > 0

    def as_dict(self) -> dict:
        return {"approvals_required": self.approvals_required, "author_may_approve": self.author_may_approve}


UNPROTECTED = Policy(0, True)
_SETTING_DEFAULT = Policy(1, False)


def policy_global(*, environment: Environment) -> Policy:
    row = EnvironmentPolicy.objects.filter(tenant__isnull=True, environment_id=environment.pk).first()
    if row is not None:
        return Policy(row.approvals_required, row.author_may_approve)
    if environment.slug in settings.CHANGE_PROTECTED_ENVIRONMENTS:
        return _SETTING_DEFAULT
    return UNPROTECTED


def _tighter(a: Policy, b: Policy) -> Policy:
    return Policy(max(a.approvals_required, b.approvals_required), a.author_may_approve and b.author_may_approve)


def policy_effective(*, tenant: Tenant, environment: Environment) -> Policy:
    """What a change of ``tenant`` in ``environment`` needs: the global default, tightened by the tenant's row."""
    base = policy_global(environment=environment)
    row = EnvironmentPolicy.objects.filter(tenant_id=tenant.pk, environment_id=environment.pk).first()
    return _tighter(base, Policy(row.approvals_required, row.author_may_approve)) if row else base


def policy_strictest() -> Policy:
    """The strictest protected policy of any tenant and environment (unprotected
    when none is): what a change reaching every tenant is reviewed under."""
    out = UNPROTECTED
    policies = [policy_global(environment=env) for env in Environment.objects.all()]
    policies += [Policy(r.approvals_required, r.author_may_approve)
                 for r in EnvironmentPolicy.objects.filter(tenant__isnull=False, approvals_required__gt=0)]
    for policy in policies:
        if policy.protected:
            out = _tighter(out, policy) if out.protected else policy
    return out


def policy_of_request(*, tenant: Tenant, environment: Environment, changes: list[dict]) -> Policy:
    """What a change request needs: its environment's policy; tightened by the
    strictest policy anywhere when it carries a schema change (a schema is every
    tenant's: its default takes part in every protected environment's values)."""
    policy = policy_effective(tenant=tenant, environment=environment)
    if has_schema_changes(changes):
        strictest = policy_strictest()
        if strictest.protected:
            policy = _tighter(policy, strictest)
    return policy


def policy_set(*, tenant: Tenant | None, environment: Environment, approvals_required: int,
               author_may_approve: bool, actor: str) -> Policy:
    """Set a tenant's policy (or, with ``tenant=None``, the global default).

    A tenant's policy looser than the global default is refused (400), naming
    the default: a tenant may only tighten."""
    if approvals_required < 0 or approvals_required > 10:
        raise ValidationFailed("approvals_required is 0 to 10", details={"approvals_required": ["0 to 10"]})
    wanted = Policy(approvals_required, author_may_approve)
    if tenant is not None:
        base = policy_global(environment=environment)
        problems = {}
        if wanted.approvals_required < base.approvals_required:
            problems["approvals_required"] = [f"the global default of {environment.slug} needs at least "
                                              f"{base.approvals_required}; a tenant may only tighten it"]
        if wanted.author_may_approve and not base.author_may_approve:
            problems["author_may_approve"] = [f"the global default of {environment.slug} forbids the author's "
                                              "approval; a tenant may only tighten it"]
        if problems:
            raise ValidationFailed("a tenant's policy may not be looser than the global default",
                                   code="policy_looser_than_default", details=problems)
    with transaction.atomic():
        EnvironmentPolicy.objects.update_or_create(
            tenant=tenant, environment=environment,
            defaults={"approvals_required": approvals_required, "author_may_approve": author_may_approve,
                      "updated_by": actor},
        )
    return policy_effective(tenant=tenant, environment=environment) if tenant is not None else wanted


def protected_environment_ids(*, tenant: Tenant | None) -> set[int]:
    """Environments where a change of ``tenant`` needs a change request. With
    ``tenant=None`` (a global entry, a schema: every tenant), the environments
    protected for any tenant."""
    by_slug = {slug: pk for pk, slug in Environment.objects.values_list("pk", "slug")}
    globals_ = {row.environment_id: row.approvals_required > 0
                for row in EnvironmentPolicy.objects.filter(tenant__isnull=True)}
    protected = {pk for slug, pk in by_slug.items() if slug in settings.CHANGE_PROTECTED_ENVIRONMENTS
                 and globals_.get(pk, True)}
    protected |= {pk for pk, on in globals_.items() if on}
    tenants = EnvironmentPolicy.objects.filter(tenant__isnull=False, approvals_required__gt=0)
    if tenant is not None:
        tenants = tenants.filter(tenant_id=tenant.pk)
    protected |= set(tenants.values_list("environment_id", flat=True))
    return protected

