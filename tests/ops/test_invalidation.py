"""Per-process caches are dropped when another process publishes an invalidation."""
from __future__ import annotations

import pytest
from django_redis import get_redis_connection

from core import invalidation
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db


def _wait(predicate, timeout=5.0) -> bool:
    return wait_until(predicate, timeout=timeout, step=0.05)


def test_invalidation__message_from_another_process__drops_the_local_value():
    loads = []

    def load():
        loads.append(1)
        return f"v{len(loads)}"

    invalidation.cached("probe:key", load)
    assert _wait(lambda: invalidation._state["connected"])
    first = invalidation.cached("probe:key", load)
    again = invalidation.cached("probe:key", load)
    assert first == again  # served from this process, no second load

    # Another process (a raw Redis client here) announces a change.
    get_redis_connection("default").publish(invalidation.CHANNEL, "probe:key")

    assert _wait(lambda: invalidation.cached("probe:key", load) != first)


def test_revoked_key__other_process_cached_it__refused_at_once(tenant, make_key, client_for):
    from tenants.models import ApiKey
    from tenants.services.api_keys import api_key_revoke

    raw = make_key(tenant=tenant, scopes=["configs:read"], name="shared")
    client = client_for(raw)
    client.get("/api/v1/configs/")
    assert _wait(lambda: invalidation._state["connected"])
    assert client.get("/api/v1/configs/").status_code == 200

    api_key_revoke(api_key=ApiKey.objects.get(name="shared"), actor="t")

    assert client.get("/api/v1/configs/").status_code == 401
