"""The one gate every write into a tenant's configs, schemas, flags and segments passes.

Every write service (configs, schemas, flags, segments; and so every path that
calls them: API, admin, import, promote, revert, bulk actions, the Unleash
import, the demo seed) calls :func:`write_check` before it changes anything.
What the gate enforces is registered here by the apps that own the rule, so
that this layer imports none of them:

- change-request protection of an environment (a direct write into a
  protected environment is refused with ``change_request_required``);
- operator roles per tenant and environment (an operator who may not edit
  production gets 403).

A check raises a :class:`core.errors.ApiError` subclass to refuse the write;
it returns ``None`` to let it through. Checks run in the order registered.

``environment=None`` means the write reaches every environment (a tenant-wide
or global entry, a flag's description, variants or dependencies), and
``tenant=None`` means every tenant (a global entry, a schema).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .models import Environment, Tenant


@dataclass(frozen=True)
class Write:
    """What is about to change, and who changes it."""

    tenant: Tenant | None
    environment: Environment | None
    resource: str  # "config", "schema", "flag", "segment"
    action: str  # "create", "update", "delete"
    key: str
    actor: str
    user_id: int | None = None
    service_name: str = ""
    # What the write sets, where a rule needs it: a schema's {"default_value": ...}
    # (the one part of a schema that changes resolved values). None: not given.
    values: dict[str, Any] | None = None


Check = Callable[[Write], Any]
_checks: list[Check] = []


def write_check_register(check: Check) -> None:
    """Add a rule to the gate (from an app's ``ready``); registering twice is a no-op."""
    if check not in _checks:
        _checks.append(check)


def write_check(
    *,
    tenant: Tenant | None,
    environment: Environment | None,
    resource: str,
    action: str,
    key: str,
    actor: str,
    user_id: int | None = None,
    service_name: str = "",
    values: dict[str, Any] | None = None,
) -> None:
    """Refuse the write (by raising) if any registered rule forbids it."""
    if not _checks:
        return
    write = Write(tenant=tenant, environment=environment, resource=resource, action=action, key=key,
                  actor=actor, user_id=user_id, service_name=service_name or "", values=values)
    for check in _checks:
        check(write)
