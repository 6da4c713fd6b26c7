"""Pinned reads: a service's config reads answered from a release until it is unpinned.

The releases app (a layer above) owns releases and pins; the read path lives here.
So that this layer imports nothing above it, the releases app installs its look-up
at start (``ReleasesConfig.ready``), as the tenants app installs its own into
``core.directory``. Without an installed look-up (or for a read that names no
environment or no service) every read is live.

The look-up is on the hottest path of the hub: the installed function must answer
from the process's memory in steady state (no database, no Redis round trip) and
cost next to nothing when no pin exists (releases/selectors.py: a push-invalidated
per-process map of every pin).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Pinned(Protocol):
    """What a read answers from while its service is pinned to a release."""

    release_id: int

    def resolution(self, key: str) -> dict[str, Any]:
        """The key as ``config_resolve_cached`` answers it (``found`` False: absent)."""

    def bundle(self) -> Any:
        """The service's bundle as ``config_bundle_cached`` answers it (a ``Bundle``)."""

    def explain(self, key: str, *, reveal: bool) -> list[dict[str, Any]]:
        """The ``?explain=true`` chain of a pinned read."""


# lookup(tenant_id, environment, service_name) -> Pinned | None, positional: it runs on
# every read of a service, and keyword arguments cost more than the look-up itself.
Lookup = Callable[[int, str, str], "Pinned | None"]
_installed: list[Lookup | None] = [None]


def pin_lookup_install(lookup: Lookup | None) -> None:
    """Called once per process by the app that owns pins (installing again replaces it)."""
    _installed[0] = lookup


def pinned(*, tenant_id: int, environment: str | None, service_name: str) -> Pinned | None:
    """The release this read answers from, or None (live)."""
    lookup = _installed[0]
    if lookup is None or not environment or not service_name:
        return None
    return lookup(tenant_id, environment, service_name)
