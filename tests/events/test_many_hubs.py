"""Many hubs (issue [3/6] item 6): two hub server processes (uvicorn, the Procfile's
application) on one PostgreSQL and one Redis. A change made through one reaches a
stream listener of the other, and a read on the other right after shows it: each
process's caches are dropped over Redis (core.invalidation) before the event is sent."""
from __future__ import annotations

import json
import os

import httpx
import pytest

from tests import factories as make
from tests.conftest import ensure_builtin_rows
from tests.events.test_stream import Listener, _auth
from tests.hub_servers import server_env, uvicorn_hub
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_hubs__a_change_through_one__reaches_the_others_listener_and_reads_at_once(make_key, tmp_path):
    ensure_builtin_rows()
    tenant = make.tenant(f"hubs-{os.getpid()}-{os.urandom(3).hex()}")
    key = make_key(tenant=tenant, scopes=["configs:read", "configs:write", "events:read"])
    make.config(tenant, "db.pool", {"size": 5})
    # Per-process caches on, as in production (push-invalidated over Redis).
    env = server_env(LOCAL_INVALIDATION="true", EVENTS_STREAM_MAX_PER_PROCESS="10")
    with uvicorn_hub(tmp_path / "a.log", env) as hub_a, uvicorn_hub(tmp_path / "b.log", env) as hub_b:
        read_b = f"{hub_b}/api/v1/config/db.pool"
        for _ in range(3):  # B has it cached now
            assert httpx.get(read_b, headers=_auth(key), timeout=10).json()["value"] == {"size": 5}
        with Listener(hub_b, key) as listener:
            assert wait_until(lambda: listener.cursor is not None, timeout=10)
            written = httpx.put(f"{hub_a}/config/tenants/{tenant.slug}/configs/db.pool",
                                json={"config_value": {"size": 9}}, headers=_auth(key), timeout=10)
            assert written.status_code == 200, written.text
            # Within a second in practice; a generous bound here (no timed tests).
            assert wait_until(lambda: listener.events, timeout=5), listener.events
            seen_on_b = httpx.get(read_b, headers=_auth(key), timeout=10)  # at once, no retry

    (event,) = listener.events
    assert (event["event"], json.loads(event["data"])["data"]["key"]) == ("config.updated", "db.pool")
    assert seen_on_b.json()["value"] == {"size": 9}
