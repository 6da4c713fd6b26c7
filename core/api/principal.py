"""Who is calling: one shape for operators (JWT), API keys and service tokens."""
from __future__ import annotations

from dataclasses import dataclass, field

# Every API key starts with this (``chk_<8 hex>_<43 chars>``): it tells a key from a
# JWT or a service token at a glance, in logs and in the Authorization header.
API_KEY_PREFIX = "chk_"

ALL_SCOPES = frozenset(
    {
        "configs:read",
        "configs:write",
        "secrets:read",
        "flags:read",
        "flags:write",
        "registry:read",
        "registry:write",
        "events:read",
        "changes:approve",
        "admin",
    }
)


@dataclass(frozen=True)
class Principal:
    """The caller of a request, as every view and service sees it.

    ``tenant_id`` is None for callers bound to every tenant (operators and
    platform keys); a bound caller never reaches another tenant (404).
    """

    kind: str  # "user" | "apikey" | "service"
    ident: str
    label: str
    tenant_id: int | None
    scopes: frozenset[str] = field(default_factory=frozenset)
    environment: str | None = None  # an API key may name its environment (OFREP)
    user_id: int | None = None

    @property
    def actor(self) -> str:
        """The audit name of the caller: ``user:alice``, ``apikey:deployer``, ``service:42``."""
        return f"{self.kind}:{self.label}"

    @property
    def all_tenants(self) -> bool:
        return self.tenant_id is None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


class PrincipalUser:
    """A stand-in for ``request.user`` when the caller is a key or a service.

    DRF needs ``is_authenticated``; nothing else of a Django user is offered so no
    code can mistake a key for an operator.
    """

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, principal: Principal):
        self.principal = principal
        self.username = principal.actor

    def __str__(self) -> str:
        return self.principal.actor
