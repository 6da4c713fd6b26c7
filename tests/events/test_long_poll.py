"""The long poll (GET /api/v1/events/?wait=): limits on held waits, and how soon a change ends a wait."""
from __future__ import annotations

import threading
import time

import pytest
import requests

from events import watch
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


class Poll(threading.Thread):
    """One GET of the watch in a thread: its response and when it started and returned."""

    def __init__(self, base: str, key: str, wait: int = 20, after: int = 0):
        super().__init__(daemon=True)
        self.url = f"{base}/api/v1/events/?after={after}&wait={wait}"
        self.key = key
        self.response: requests.Response | None = None
        self.started = self.returned = 0.0

    @staticmethod
    def refused(base: str, key: str, after: int) -> int:
        """The status of one more wait of ``key`` (429: the key's waits are all held)."""
        return requests.get(f"{base}/api/v1/events/?after={after}&wait=1", headers={"Authorization": f"ApiKey {key}"},
                            timeout=30).status_code

    @classmethod
    def held(cls, base: str, key: str, after: int, wait: int = 40) -> Poll:
        """A poll of ``key`` that the server holds, known by a second wait of the same
        key answering 429 (EVENTS_WAIT_MAX_PER_KEY=1); if the second came first, again."""
        while True:
            poll = cls(base, key, wait=wait, after=after)
            poll.start()
            if cls.refused(base, key, after) == 429:
                return poll
            poll.join(wait + 10)  # the probe was the one held (and this poll got the 429)

    def run(self) -> None:
        self.started = time.monotonic()
        self.response = requests.get(self.url, headers={"Authorization": f"ApiKey {self.key}"}, timeout=60)
        self.returned = time.monotonic()


def _held() -> int:
    return watch._state["total"]


def _cursor() -> int:
    from events.models import Event

    last = Event.objects.order_by("-id").first()
    return last.pk if last else 0


def test_long_poll__third_wait_of_one_key__429_at_once_another_key_still_waits(live_server, tenant, make_key, settings):
    from tenants.services.configs import config_create

    settings.EVENTS_WAIT_MAX_PER_KEY = 2
    settings.EVENTS_WAIT_MAX_PER_PROCESS = 10
    greedy = make_key(tenant=tenant, scopes=["events:read"], name="greedy")
    other = make_key(tenant=tenant, scopes=["events:read"], name="other")
    after = _cursor()
    first, second = Poll(live_server.url, greedy, after=after), Poll(live_server.url, greedy, after=after)
    first.start()
    second.start()
    assert wait_until(lambda: _held() == 2, timeout=10)

    started = time.monotonic()
    third = requests.get(f"{live_server.url}/api/v1/events/?after={after}&wait=20",
                         headers={"Authorization": f"ApiKey {greedy}"}, timeout=30)
    third_seconds = time.monotonic() - started
    others = Poll(live_server.url, other, wait=1, after=after)
    others.run()
    config_create(tenant=tenant, key="ends.the.waits", value=1, actor="t")
    first.join(30)
    second.join(30)

    assert third.status_code == 429
    assert third.headers["Retry-After"] == "5"
    assert third.json()["error"]["code"] == "too_many_waits"
    assert third_seconds < 1.0
    assert others.response.status_code == 200 and others.response.json()["events"] == []
    assert others.returned - others.started >= 0.9  # it was allowed to wait
    assert [p.response.status_code for p in (first, second)] == [200, 200]
    assert first.response.json()["events"][0]["data"]["key"] == "ends.the.waits"
    assert _held() == 0


def test_long_poll__process_cap_reached__503_with_retry_after_and_plain_polls_still_answer(live_server, tenant, make_key,
                                                                                            settings):
    from tenants.services.configs import config_create

    settings.EVENTS_WAIT_MAX_PER_KEY = 5
    settings.EVENTS_WAIT_MAX_PER_PROCESS = 2
    keys = [make_key(tenant=tenant, scopes=["events:read"], name=f"k{i}") for i in range(3)]
    after = _cursor()
    polls = [Poll(live_server.url, keys[0], after=after), Poll(live_server.url, keys[1], after=after)]
    for p in polls:
        p.start()
    assert wait_until(lambda: _held() == 2, timeout=10)

    headers = {"Authorization": f"ApiKey {keys[2]}"}
    full = requests.get(f"{live_server.url}/api/v1/events/?after={after}&wait=20", headers=headers, timeout=30)
    plain = requests.get(f"{live_server.url}/api/v1/events/?after={after}", headers=headers, timeout=30)
    config_create(tenant=tenant, key="ends.the.waits", value=1, actor="t")
    for p in polls:
        p.join(30)

    assert full.status_code == 503
    assert full.headers["Retry-After"] == "5"
    assert full.json()["error"]["code"] == "wait_capacity"
    assert plain.status_code == 200
    assert [p.response.status_code for p in polls] == [200, 200]
    assert _held() == 0


def _latency_of_a_change(live_server, tenant, make_key, change) -> tuple[Poll, float]:
    key = make_key(tenant=tenant, scopes=["events:read"])
    poll = Poll(live_server.url, key, wait=20, after=_cursor())
    poll.start()
    assert wait_until(lambda: _held() == 1, timeout=10, step=0.01)
    time.sleep(0.1)  # let it look at the database once and start waiting
    change()
    committed = time.monotonic()
    poll.join(30)
    assert poll.response.status_code == 200
    assert poll.returned - poll.started > 0.1  # it was waiting when the change came
    return poll, poll.returned - committed


def _config_change(tenant):
    from tenants.services.configs import config_create

    return lambda: config_create(tenant=tenant, key="watched", value=1, actor="t")


def _change_from_another_process(tenant):
    # What the worker or the beat commits: no after-commit hook runs in this process.
    from events.models import Event

    return lambda: Event.objects.create(tenant=tenant, tenant_slug=tenant.slug, resource_type="config",
                                        action="updated", key="watched", actor="worker")


def test_long_poll__embedded_default_no_redis__answers_well_under_a_second_after_a_change(live_server, tenant, make_key,
                                                                                           settings):
    settings.REDIS_URL = None
    poll, latency = _latency_of_a_change(live_server, tenant, make_key, _config_change(tenant))

    assert poll.response.json()["events"][0]["data"]["key"] == "watched"
    assert latency < 0.5, latency  # was 0.8-0.9 s here (a one-second poll)


def test_long_poll__no_redis_change_of_another_process__answers_within_the_poll_interval(live_server, tenant, make_key,
                                                                                         settings):
    settings.REDIS_URL = None
    poll, latency = _latency_of_a_change(live_server, tenant, make_key, _change_from_another_process(tenant))

    assert poll.response.json()["events"][0]["data"]["actor"] == "worker"
    assert latency < 0.5, latency  # EVENTS_POLL_INTERVAL 0.2 s; was 0.8-0.9 s here (a one-second poll)


def test_long_poll__with_redis__woken_by_pub_sub_well_under_a_second(live_server, tenant, make_key, settings):
    assert settings.REDIS_URL
    poll, latency = _latency_of_a_change(live_server, tenant, make_key, _config_change(tenant))

    assert poll.response.json()["events"][0]["data"]["key"] == "watched"
    assert latency < 0.5, latency


# --- under ASGI (the Procfile's server): a wait is a coroutine of the stream's hub --------

ASGI_LISTENERS = 14


@pytest.fixture(scope="module")
def asgi_hub(django_db_setup, django_db_blocker, tmp_path_factory):
    """uvicorn with a pool of 2 threads for the synchronous routes; the thread-held
    cap (EVENTS_WAIT_MAX_PER_PROCESS=1) would refuse a second wait if waits held threads."""
    from tests.hub_servers import server_env, uvicorn_hub

    with django_db_blocker.unblock():
        env = server_env(GUNICORN_THREADS="2", EVENTS_WAIT_MAX_PER_PROCESS="1", EVENTS_WAIT_MAX_PER_KEY="1",
                         EVENTS_STREAM_MAX_PER_PROCESS=str(ASGI_LISTENERS))
    with uvicorn_hub(tmp_path_factory.mktemp("long-poll") / "uvicorn.log", env) as base:
        yield base


def test_long_poll_under_asgi__more_waits_than_threads__reads_answer_while_they_wait_and_a_change_ends_them(
        asgi_hub, make_key):
    from tenants.services.configs import config_create
    from tests import factories as make
    from tests.hub_servers import thread_count

    tenant = make.tenant(f"long-poll-{time.monotonic_ns()}")
    keys = [make_key(tenant=tenant, scopes=["events:read", "configs:read"], name=f"svc-{i}")
            for i in range(ASGI_LISTENERS)]
    one_more = make_key(tenant=tenant, scopes=["events:read"], name="one-more")
    make.config(tenant, "plain.read", 41)
    after = _cursor()
    warm = Poll(asgi_hub, keys[0], wait=1, after=after)
    warm.run()  # the hub and its reading thread exist from here on
    assert (warm.response.status_code, warm.response.json()) == (200, {"events": [], "cursor": after})
    bad = requests.get(f"{asgi_hub}/api/v1/events/?wait=5", headers={"Authorization": "ApiKey nope"}, timeout=30)
    assert bad.status_code == 401  # (and the threads an error answer starts, once)
    threads = thread_count(asgi_hub)

    # 14 waits held at once (each known by its key's next wait answering 429)...
    polls = [Poll.held(asgi_hub, key, after) for key in keys]
    full = requests.get(f"{asgi_hub}/api/v1/events/?after={after}&wait=40",
                        headers={"Authorization": f"ApiKey {one_more}"}, timeout=30)
    assert (full.status_code, full.headers["Retry-After"]) == (503, "5")  # ...the process is full,
    assert full.json()["error"]["code"] == "wait_capacity"
    assert thread_count(asgi_hub) == threads  # none of them holds a thread,
    read = requests.get(f"{asgi_hub}/api/v1/configs/", headers={"Authorization": f"ApiKey {keys[0]}"}, timeout=30)
    assert read.status_code == 200 and "plain.read" in read.text  # so a read answers meanwhile.
    assert all(poll.response is None for poll in polls)

    config_create(tenant=tenant, key="ends.the.waits", value=1, actor="t")
    for poll in polls:
        poll.join(30)
    assert [p.response.status_code for p in polls] == [200] * ASGI_LISTENERS
    assert {p.response.json()["events"][0]["data"]["key"] for p in polls} == {"ends.the.waits"}
    assert {p.response.json()["cursor"] for p in polls} == {_cursor()}
