"""What the tenants app's views share: the platform-credential check, secrets
reading, the entry ETag, the read-latency timer and common query parameters."""
from __future__ import annotations

import functools
import time

from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import PermissionDenied

from core.api.conditional import version_etag
from core.metrics import CONFIG_FETCH_SECONDS
from tenants import selectors
from tenants.models import ConfigEntry, Environment

ENV_PARAM = OpenApiParameter("environment", str, description="environment slug")
SVC_PARAM = OpenApiParameter("service_name", str, description="service name")


def timed(route: str):
    """Observe the config fetch latency of a read route (Prometheus histogram)."""
    histogram = CONFIG_FETCH_SECONDS.labels(route)

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                histogram.observe(time.perf_counter() - started)

        return inner

    return wrap


def require_platform(request) -> None:
    """Cross-tenant routes (all-tenants reads, tenant provisioning, global schemas)
    need a credential bound to every tenant, whatever its scopes."""
    if not request.auth.all_tenants:
        raise PermissionDenied("this route needs a platform credential (bound to all tenants)")


def reveal_allowed(request) -> bool:
    """Whether the caller may read secrets' values (``secrets:read``)."""
    return request.auth.has_scope("secrets:read")


def entry_etag(entry: ConfigEntry, masked: bool = False) -> str:
    return version_etag(entry.pk, entry.version, masked=masked)


def env_or_none(slug: str | None) -> Environment | None:
    return selectors.environment_named(slug) if slug else None
