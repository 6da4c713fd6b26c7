"""Faults under a live stream: the tests' own Redis (tests/faults/conftest.py) killed and
restarted while a uvicorn hub (the Procfile's application) holds a listener and a long poll."""
from __future__ import annotations

import json

import pytest
from django.db import connection

from tests.events.test_long_poll import Poll
from tests.events.test_stream import Listener, _ids
from tests.hub_servers import server_env, uvicorn_hub
from tests.waiting import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


def _change(tenant, key: str) -> int:
    from events.models import Event
    from tenants.services.configs import config_create

    config_create(tenant=tenant, key=key, value=1, actor="test")
    return Event.objects.filter(key=key).latest("id").pk


def test_redis_restarts_under_a_live_stream__the_listener_stays_and_misses_nothing(tenant, make_key, redis_outage,
                                                                                    tmp_path):
    key = make_key(tenant=tenant, scopes=["events:read"])
    env = server_env(EVENTS_STREAM_MAX_PER_PROCESS="10")
    with uvicorn_hub(tmp_path / "uvicorn.log", env) as base, Listener(base, key) as listener:
        assert wait_until(lambda: listener.cursor is not None, timeout=10)
        before = _change(tenant, "before.the.outage")
        assert wait_until(lambda: _ids(listener) == [before], timeout=10)

        with redis_outage():
            # The hub's subscription broke: it looks at the outbox meanwhile.
            poll = Poll(base, key, wait=30, after=before)
            poll.start()
            during = _change(tenant, "during.the.outage")
            assert wait_until(lambda: _ids(listener) == [before, during], timeout=15), listener.events
            poll.join(30)

        # Redis is back (the hub subscribes again): still the same connection, nothing missed.
        after = _change(tenant, "after.the.outage")
        assert wait_until(lambda: _ids(listener) == [before, during, after], timeout=15), listener.events
        assert listener.errors.empty() and listener.is_alive()

    assert [json.loads(e["data"])["data"]["key"] for e in listener.events] == [
        "before.the.outage", "during.the.outage", "after.the.outage"]
    assert poll.response.status_code == 200
    assert [e["id"] for e in poll.response.json()["events"]] == [during]


def test_postgres_down_during_a_long_poll_under_asgi__503_json_with_retry_after(tenant, make_key, postgres_outage,
                                                                               tmp_path):
    from events.models import Event

    key = make_key(tenant=tenant, scopes=["events:read"])
    with uvicorn_hub(tmp_path / "uvicorn.log", server_env(EVENTS_WAIT_MAX_PER_KEY="1")) as base:
        after = Event.objects.latest("id").pk
        poll = Poll.held(base, key, after, wait=5)
        with postgres_outage():
            poll.join(30)  # the wait ends; its look at the outbox finds no database
        connection.close()  # the test's own connection died with the server
        again = Poll(base, key, wait=1, after=after)
        again.run()  # and the hub recovers by itself

    assert poll.response.status_code == 503
    assert poll.response.headers["Retry-After"] == "5"
    assert poll.response.json()["error"]["code"] == "dependency_unavailable"
    assert again.response.status_code == 200
