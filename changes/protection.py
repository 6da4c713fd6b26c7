"""The protection rule of the write gate (tenants.guard): a direct write that would
change a protected environment is refused with ``change_request_required``.

What "would change a protected environment" means (docs/change-requests.md):

- a write naming a protected environment (a config entry of that environment, a
  flag's state there): refused;
- a config write for every environment (``environment=None``: a tenant-wide
  entry) of a tenant: refused when some protected environment of the tenant would
  resolve the key from it, that is when that environment holds no entry of its own
  for the key (tenant + environment, or tenant + environment + the write's service).
  Give production its own value first (a change request), then the tenant-wide
  entry is free to change for the other environments;
- a global write (``tenant=None``: a global entry; a schema whose default value
  changes, since it takes part in every tenant's resolution): refused while any
  environment is protected for any tenant (a global environment entry: while
  that environment is). A schema write leaving the default value as it is
  changes no resolved value and goes through;
- a flag change for every environment (variants, dependencies, kind, deletion):
  refused when the flag has a state in a protected environment; a description
  alone changes no evaluation and goes through; a new flag with no state goes through;
- a segment: refused when it exists and the tenant has a protected environment
  (flags of production may use it); creating one goes through.

While a change request is being applied (:func:`applying`), its own writes (its
tenant's, and its schema changes: a schema has no tenant) pass: that is the only way in.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from core.errors import ChangeRequestRequired
from flags.models import FlagEnvironment, Segment
from tenants.guard import Write
from tenants.models import ConfigEntry, ConfigSchema, Environment

from .policies import protected_environment_ids

ROUTE = "/api/v1/change-requests/"
# (tenant id, history reason) of the change request being applied in this context.
_applying: ContextVar[tuple[int, str] | None] = ContextVar("change_request_applying", default=None)


@contextmanager
def applying(*, tenant_id: int, reason: str) -> Iterator[None]:
    """Let the writes of one tenant through, for the duration of a change request's
    apply (and only there: a context variable, so no other request or thread)."""
    token = _applying.set((tenant_id, reason))
    try:
        yield
    finally:
        _applying.reset(token)


def applying_reason() -> str | None:
    """The history reason of the change request being applied here, if any."""
    current = _applying.get()
    return current[1] if current else None


def _refuse(write: Write, environments: list[str]) -> None:
    where = ", ".join(sorted(environments)) or "a protected environment"
    what = f"{write.resource} '{write.key}'"
    raise ChangeRequestRequired(
        f"{where} is protected: {what} changes only through a change request (POST {ROUTE})",
        details={"route": ROUTE, "environments": sorted(environments), "resource": write.resource, "key": write.key},
    )


def _slugs(ids) -> list[str]:
    return list(Environment.objects.filter(pk__in=ids).values_list("slug", flat=True))


def _schema_default_changes(write: Write) -> bool:
    """Whether a schema write changes the key's ``default_value`` (resolution's last scope)."""
    current = ConfigSchema.objects.filter(key=write.key).values_list("default_value", flat=True).first()
    if write.action == "delete":
        return current is not None
    if write.values is None or "default_value" not in write.values:
        return True  # not told: assume it does
    return write.values["default_value"] != current


def protection_check(write: Write) -> None:
    """The gate rule (registered by ChangesConfig.ready)."""
    current = _applying.get()
    if current is not None and (write.tenant is not None and write.tenant.pk == current[0] or write.resource == "schema"):
        # A schema is global: the request's own schema changes (only a caller allowed
        # the direct schema route may propose or apply them) pass with the request.
        return
    if write.action == "describe":
        return
    protected = protected_environment_ids(tenant=write.tenant)
    if not protected:
        return
    if write.environment is not None:
        if write.environment.pk in protected:
            _refuse(write, [write.environment.slug])
        return
    if write.resource == "schema" and not _schema_default_changes(write):
        return  # validation only: no resolved value changes (values a schema breaks refuse it anyway)
    if write.tenant is None:
        _refuse(write, _slugs(protected))
    reached = set(protected)
    if write.resource == "config":
        # Environments holding their own entry for the key don't resolve it from this one.
        own = ConfigEntry.objects.filter(tenant_id=write.tenant.pk, environment_id__in=protected, key=write.key,
                                         service_name__in={"", write.service_name})
        reached -= set(own.values_list("environment_id", flat=True))
    elif write.resource == "flag":
        if write.action == "create":
            return
        reached &= set(FlagEnvironment.objects.filter(flag__tenant_id=write.tenant.pk, flag__name=write.key)
                       .values_list("environment_id", flat=True))
    elif write.resource == "segment" and not Segment.objects.filter(tenant_id=write.tenant.pk, name=write.key).exists():
        return
    if reached:
        _refuse(write, _slugs(reached))



