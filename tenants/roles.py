"""Who may change what: operator roles per tenant and environment.

A :class:`~tenants.models.RoleAssignment` gives a user, or a Django group (what
single sign-on maps the identity provider's groups to), one role in one tenant
(or every tenant) and one environment (or every environment). The roles are
ordered, each granting what the ones before it grant:

- ``viewer``: reads only (reads themselves are governed by the model permissions);
- ``editor``: writes configs, flags, segments and schemas in that scope;
- ``approver``: what an editor may, and approves change requests there;
- ``admin``: what an approver may (the role a tenant's owners hold).

How roles combine with the rest (docs/admin.md "Roles"):

- A superuser may do everything, everywhere; roles do not restrict them.
- A model permission says WHAT kind of object a user may change (configs,
  flags...), a role WHERE: a write by a Django user needs both.
- A write that reaches every environment (``environment=None``: a tenant-wide
  entry, a flag's variants, a segment, a flag's deletion) needs the role in
  every environment (an assignment for every environment, or one per
  environment that exists); one that reaches every tenant (a global entry, a
  schema) needs an assignment for every tenant.
- A user who holds no role at all is governed by the model permissions alone,
  as before roles existed, unless ``ROLES_REQUIRED`` is on; then such a user
  may change nothing.
- API keys keep their scopes: roles are for people (a write with a user id).

The rule is registered in the one write gate (:mod:`tenants.guard`), so every
path (API, admin, import, promote, revert, bulk actions) asks it; the admin asks
:func:`may_write` before it shows an object editable.
"""
from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Q

from core.errors import Forbidden

from .guard import Write
from .models import Environment, RoleAssignment, Tenant

ROLE_ORDER = [RoleAssignment.VIEWER, RoleAssignment.EDITOR, RoleAssignment.APPROVER, RoleAssignment.ADMIN]
WRITE_ROLE = RoleAssignment.EDITOR


def _at_least(role: str) -> list[str]:
    if role not in ROLE_ORDER:
        raise ValueError(f"unknown role {role!r} (one of {', '.join(ROLE_ORDER)})")
    return ROLE_ORDER[ROLE_ORDER.index(role):]


def _assignments(user_id: int):
    """The user's own assignments and those of the user's groups."""
    return RoleAssignment.objects.filter(Q(user_id=user_id) | Q(group__user__id=user_id))


def role_allows(*, user_id: int, tenant: Tenant | None, environment: Environment | None, role: str) -> bool:
    """Whether the user holds ``role`` (or a higher one) in ``tenant`` and ``environment``.

    ``tenant=None`` asks for every tenant, ``environment=None`` for every
    environment. A superuser holds every role everywhere; an inactive or unknown
    user none. This is the question change requests ask of an approver."""
    user = get_user_model().objects.filter(pk=user_id).only("is_active", "is_superuser").first()
    if user is None or not user.is_active:
        return False
    if user.is_superuser:
        return True
    held = _assignments(user_id).filter(role__in=_at_least(role))
    held = held.filter(tenant__isnull=True) if tenant is None else held.filter(Q(tenant__isnull=True) | Q(tenant=tenant))
    if environment is not None:
        return held.filter(Q(environment__isnull=True) | Q(environment=environment)).exists()
    envs = set(held.values_list("environment_id", flat=True).distinct())
    if not envs:
        return False
    if None in envs:
        return True
    return set(Environment.objects.values_list("id", flat=True)) <= envs


def user_has_roles(*, user_id: int) -> bool:
    return _assignments(user_id).exists()


def may_write(*, user_id: int | None, tenant: Tenant | None, environment: Environment | None) -> bool:
    """The gate's role rule as a question: may this user write in this scope?

    No user (an API key, the system): roles do not apply. A user without any role
    is governed by the model permissions alone unless ``ROLES_REQUIRED``."""
    if user_id is None:
        return True
    if role_allows(user_id=user_id, tenant=tenant, environment=environment, role=WRITE_ROLE):
        return True
    return not settings.ROLES_REQUIRED and not user_has_roles(user_id=user_id)


def scope_label(tenant: Tenant | None, environment: Environment | None) -> str:
    return f"{tenant.slug if tenant else 'every tenant'}/{environment.slug if environment else 'every environment'}"


def role_write_check(write: Write) -> None:
    """The write gate's role rule (registered in ``TenantsConfig.ready``): 403 ``role_required``."""
    if may_write(user_id=write.user_id, tenant=write.tenant, environment=write.environment):
        return
    where = scope_label(write.tenant, write.environment)
    raise Forbidden(
        f"changing {write.resource} '{write.key}' in {where} needs the {WRITE_ROLE} role there",
        code="role_required",
        details={"tenant": write.tenant.slug if write.tenant else None,
                 "environment": write.environment.slug if write.environment else None,
                 "role": WRITE_ROLE},
    )
