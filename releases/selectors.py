"""Release reads: a tenant's releases, comparing two, and the pinned-read look-up
that the read path calls on every config read (installed into ``tenants.pins``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache

from core import invalidation
from core.cache import LocalCache
from core.errors import NotFound
from core.fields import encrypt_json
from tenants.selectors import SOURCE_DEFAULT, Bundle, resolved_value

from .models import Pin, Release
from .snapshot import content_view, same_value

# --- releases -------------------------------------------------------------------------------


def release_for_tenant(*, tenant_id: int, release_id: int | str) -> Release:
    """A release of the caller's tenant; another tenant's is as absent as a missing one (404)."""
    if not (str(release_id).isascii() and str(release_id).isdigit()):
        raise NotFound("release ids are integers")
    release = Release.objects.select_related("tenant", "environment").filter(
        pk=int(release_id), tenant_id=tenant_id).first()
    if release is None:
        raise NotFound(f"release {release_id} not found")
    return release


def releases_of(*, tenant_id: int, environment_id: int | None = None):
    """A tenant's releases, newest first (``content`` and ``secrets`` left unread)."""
    qs = Release.objects.filter(tenant_id=tenant_id).select_related("environment").defer("content", "secrets")
    if environment_id is not None:
        qs = qs.filter(environment_id=environment_id)
    return qs.order_by("-created_at", "-id")


def release_pins(*, release: Release) -> list[str]:
    """The services pinned to a release."""
    return list(Pin.objects.filter(release=release).order_by("service_name").values_list("service_name", flat=True))


def _shown(release: Release, item: dict[str, Any] | None, *, reveal: bool) -> dict[str, Any]:
    """An item as a compare or a read answers it: ``{"value", "source"}``, a secret's
    value masked (``"masked": true``) for a caller that may not read secrets."""
    if item is None:
        return {"value": None, "source": None}
    if item.get("is_secret"):
        if not reveal:
            return {"value": None, "source": item["source"], "masked": True}
        return {"value": release.secrets[item["secret"]], "source": item["source"]}
    return {"value": item["value"], "source": item["source"]}


def release_values(*, release: Release, service: str, reveal: bool) -> list[dict[str, Any]]:
    """The resolved values of a release for a service ("" = the tenant)."""
    view = content_view(release.content, service)
    return [{"key": key, "is_secret": bool(item.get("is_secret")), **_shown(release, item, reveal=reveal)}
            for key, item in view.items()]


def releases_compare(*, a: Release, b: Release, service: str, reveal: bool) -> dict[str, list[dict[str, Any]]]:
    """What differs from release ``a`` to release ``b``: every key whose resolved value for
    ``service`` ("" = the tenant) differs (the shape of comparing environments), and
    every flag whose state differs."""
    left, right = content_view(a.content, service), content_view(b.content, service)
    differences = [
        {"key": key, "from": _shown(a, left.get(key), reveal=reveal), "to": _shown(b, right.get(key), reveal=reveal)}
        for key in sorted(left.keys() | right.keys())
        if not same_value(left.get(key), right.get(key))
    ]
    flags_a, flags_b = a.content["flags"], b.content["flags"]
    flags = [
        {"name": name, "from": flags_a.get(name), "to": flags_b.get(name)}
        for name in sorted(flags_a.keys() | flags_b.keys())
        if flags_a.get(name) != flags_b.get(name)
    ]
    return {"differences": differences, "flags": flags}


# --- pinned reads ------------------------------------------------------------------------------
#
# Every config read of a service asks whether it is pinned, so the answer must cost no
# round trip: each process keeps the map of every pin, (tenant id, environment slug,
# service) -> release id, in a push-invalidated LocalCache (a pin or unpin drops it in
# every process after commit). Behind it, the shared cache holds the same map (set by
# the writer after commit; readers only ``add``, so a reader that read the database
# before a commit cannot overwrite the writer's map). Pins are few (an operator's
# emergency brake, not a per-request thing): the whole map is one value. With no pin
# anywhere the look-up is one dict get and an empty-map test.
#
# A pinned view (the rows a pinned service reads) is built once per (release, service)
# and kept: a release never changes. Its secrets are held as Fernet tokens, decrypted
# per request for callers with secrets:read (as the live bundle does).

PINS_NAME = "releases:pins"
_PINS_SHARED = "releases:pins:map"
_pins = LocalCache(PINS_NAME, push=True, max_items=4)
_views = LocalCache("releases.pinned-views", max_items=1_000)


def pins_from_db() -> dict[tuple[int, str, str], int]:
    return {
        (tenant_id, env, service): release_id
        for tenant_id, env, service, release_id in Pin.objects.values_list(
            "tenant_id", "environment__slug", "service_name", "release_id")
    }


def _pins_load() -> dict[tuple[int, str, str], int]:
    pins = cache.get(_PINS_SHARED)
    if pins is None:
        pins = pins_from_db()
        cache.add(_PINS_SHARED, pins, settings.CONFIG_CACHE_TTL)
    return pins


def pins_publish() -> None:
    """After a pin or unpin commits: the shared map rewritten, every process's copy dropped."""
    cache.set(_PINS_SHARED, pins_from_db(), settings.CONFIG_CACHE_TTL)
    invalidation.invalidate(PINS_NAME)


@dataclass
class PinnedView:
    """A service's reads answered from a release (``tenants.pins.Pinned``)."""

    release_id: int
    release_name: str
    environment: str
    service_name: str
    rows: dict[str, dict[str, Any]]  # key -> a row of config_bundle's shape (secrets as tokens)
    defaults: dict[str, tuple[Any, int]]  # schema defaults any key falls back to, as config_resolve does
    shaped: Bundle = field(init=False)

    def __post_init__(self) -> None:
        self.shaped = Bundle.shape(list(self.rows.values()))

    def resolution(self, key: str) -> dict[str, Any]:
        row = self.rows.get(key)
        base = {"key": key, "environment": self.environment, "service_name": self.service_name or None}
        if row is not None:
            return {**base, "found": True, "value": row["value"], "is_secret": row["is_secret"],
                    "secret_token": row["secret_token"], "source": row["source"], "version": row["version"],
                    "entry_id": row["id"]}
        if key in self.defaults:
            value, version = self.defaults[key]
            return {**base, "found": True, "value": value, "is_secret": False, "secret_token": None,
                    "source": SOURCE_DEFAULT, "version": version, "entry_id": None}
        return {**base, "found": False, "value": None, "is_secret": False, "secret_token": None, "source": None,
                "version": None, "entry_id": None}

    def bundle(self) -> Bundle:
        return self.shaped

    def explain(self, key: str, *, reveal: bool) -> list[dict[str, Any]]:
        data = self.resolution(key)
        if not data["found"]:
            return []
        value, masked = resolved_value(data, reveal=reveal)
        return [{"source": "release", "release": {"id": self.release_id, "name": self.release_name},
                 "resolved_from": data["source"], "version": data["version"], "value": value,
                 **({"masked": True} if masked else {})}]


def pinned_view_build(release: Release, service: str) -> PinnedView:
    rows = {}
    for key, item in content_view(release.content, service).items():
        secret = item.get("is_secret")
        rows[key] = {
            "id": item["id"], "key": key, "value": None if secret else item["value"],
            "secret_token": encrypt_json(release.secrets[item["secret"]]) if secret else None,
            "environment": release.environment.slug, "service_name": service or None, "version": item["version"],
            "source": item["source"], "is_secret": bool(secret),
        }
    defaults = {key: (s["default_value"], s["version"]) for key, s in release.content["schemas"].items()
                if s["default_value"] is not None}
    return PinnedView(release_id=release.pk, release_name=release.name, environment=release.environment.slug,
                      service_name=service, rows=rows, defaults=defaults)


def pinned_reads(tenant_id: int, environment: str, service_name: str) -> PinnedView | None:
    """The look-up installed into ``tenants.pins``: the release a read answers from, or None."""
    # The lock-free get first (about a quarter of get_or_load's cost on a hit); a miss
    # goes through get_or_load, which keeps the push cache's safety rules.
    pins = _pins.get(PINS_NAME)
    if pins is None:
        pins = _pins.get_or_load(PINS_NAME, _pins_load)
    if not pins:
        return None
    release_id = pins.get((tenant_id, environment, service_name))
    if release_id is None:
        return None
    view = _views.get((release_id, service_name))
    if view is None:
        release = Release.objects.select_related("environment").filter(pk=release_id).first()
        if release is None:  # deleted since the map was read: live
            return None
        view = pinned_view_build(release, service_name)
        _views.set((release_id, service_name), view)
    return view
