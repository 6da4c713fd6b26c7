"""How core reaches what an app owns without importing the app.

Core's API plumbing needs look-ups that belong to the tenants app: the principal
of an API key, a tenant by slug or id; the events app (a layer below tenants)
asks whether an environment exists. Neither may import tenants (the layers in
``.importlinter``), so the tenants app installs its functions here
when Django starts (``TenantsConfig.ready``), as Django's auth asks for the user
model through ``get_user_model()`` instead of importing it. Core code calls
``directory.api_key_principal(...)`` etc.; a call before installation is a
programming error and says so.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

# The answer of ``api_key_principal(allow_query=False)`` when the key is not in
# any cache: the caller decides whether this client may cost a database query.
UNCHECKED: Any = object()

_installed: dict[str, Callable[..., Any]] = {}


def install(**functions: Callable[..., Any]) -> None:
    """Called once per process by the app that owns the look-ups."""
    _installed.update(functions)


def _get(name: str) -> Callable[..., Any]:
    try:
        return _installed[name]
    except KeyError:
        raise RuntimeError(f"core.directory.{name} is not installed: is the tenants app in INSTALLED_APPS?") from None


def api_key_principal(*, raw_key: str, allow_query: bool = True):
    """The Principal of a raw API key, None (malformed, unknown, revoked, expired),
    or UNCHECKED when ``allow_query=False`` and the key is in no cache."""
    return _get("api_key_principal")(raw_key=raw_key, allow_query=allow_query)


def tenant_get(*, slug: str):
    """An active tenant by slug, or NotFound."""
    return _get("tenant_get")(slug=slug)


def tenant_slug(*, tenant_id: int) -> str | None:
    """The slug of a tenant by id (None: no such tenant)."""
    return _get("tenant_slug")(tenant_id=tenant_id)


def default_tenant_slug() -> str:
    return _get("default_tenant_slug")()


def environment_exists(*, slug: str) -> bool:
    return _get("environment_exists")(slug=slug)
