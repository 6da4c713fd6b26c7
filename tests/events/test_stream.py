"""The change stream (GET /api/v1/stream, server-sent events) served by a real ASGI server.

One uvicorn process of this checkout (config_hub.asgi, the Procfile's application)
runs on the test database and Redis; tests commit their changes through the
services (``transactional_db``) and read the stream with httpx.
"""
from __future__ import annotations

import itertools
import json
import os
import queue
import socket
import threading
import time

import httpx
import pytest

from tests import factories as make
from tests.conftest import ensure_builtin_rows
from tests.hub_servers import KEEPALIVE, MAX_LISTENERS, server_env, thread_count, uvicorn_hub
from tests.ops.test_static_and_csp import production_gunicorn  # noqa: F401 - a fixture
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def hub_server(django_db_setup, django_db_blocker, tmp_path_factory):
    """The hub on PostgreSQL and Redis (one pub/sub subscription wakes the listeners)."""
    with django_db_blocker.unblock():
        env = server_env()
    with uvicorn_hub(tmp_path_factory.mktemp("stream") / "uvicorn.log", env) as base:
        yield base


@pytest.fixture(scope="module")
def redisless_server(django_db_setup, django_db_blocker, tmp_path_factory):
    """The hub without Redis (as ``make run``'s embedded default), polling other
    processes' events only every 30 s: a change made through it wakes its listeners
    by the in-process notification."""
    with django_db_blocker.unblock():
        env = server_env(REDIS_URL="", EVENTS_POLL_INTERVAL="30")
    with uvicorn_hub(tmp_path_factory.mktemp("stream-local") / "uvicorn.log", env) as base:
        yield base


_slugs = itertools.count(1)


@pytest.fixture
def tenant(db):
    """A tenant whose slug no earlier test used: the server process caches tenants
    by slug for a while, and the database is emptied between tests."""
    ensure_builtin_rows()
    return make.tenant(f"stream-{os.getpid()}-{next(_slugs)}")


@pytest.fixture
def other_tenant(db):
    return make.tenant(f"other-{os.getpid()}-{next(_slugs)}")


class Listener(threading.Thread):
    """One stream connection read in a thread: its status, headers, events and comments."""

    def __init__(self, base: str, key: str, query: str = "", headers: dict | None = None):
        super().__init__(daemon=True)
        self.url = f"{base}/api/v1/stream{query}"
        self.headers = {"Authorization": f"ApiKey {key}", "Accept": "text/event-stream", **(headers or {})}
        self.events: list[dict] = []
        self.comments: list[str] = []
        self.status: int | None = None
        self.cursor: int | None = None  # an id line without data: where the stream starts
        self.content_type = ""
        self.connected = threading.Event()
        self._halt = threading.Event()
        self.errors: queue.Queue = queue.Queue()

    def run(self) -> None:
        try:
            with httpx.stream("GET", self.url, headers=self.headers, timeout=httpx.Timeout(30, read=30)) as response:
                self.status = response.status_code
                self.content_type = response.headers.get("content-type", "")
                current: dict = {}
                for line in response.iter_lines():
                    if self._halt.is_set():
                        return
                    if line.startswith(":"):
                        self.comments.append(line[1:].strip())
                        self.connected.set()
                    elif line == "":
                        if "data" in current:
                            self.events.append(current)
                        elif "id" in current:
                            self.cursor = int(current["id"])
                        current = {}
                    else:
                        name, _, value = line.partition(":")
                        current[name] = value.removeprefix(" ")
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.errors.put(exc)
        finally:
            self.connected.set()

    def stop(self) -> None:
        """Close the connection (the reader notices on its next line: a keepalive at the latest)."""
        self._halt.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout=KEEPALIVE * 10)

    def __enter__(self) -> Listener:
        self.start()
        assert self.connected.wait(20), "the stream did not start"
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _auth(key: str) -> dict:
    return {"Authorization": f"ApiKey {key}"}


def _ids(listener: Listener) -> list[int]:
    return [int(e["id"]) for e in listener.events if e.get("event") != "reset"]


def test_stream__changes_committed__arrive_in_order_with_id_type_and_webhook_json_and_no_secret(
        hub_server, tenant, make_key, environments):
    from events.messages import event_payload
    from events.models import Event

    key = make_key(tenant=tenant, scopes=["events:read"])
    before = Event.objects.latest("id").pk
    with Listener(hub_server, key) as listener:
        assert listener.status == 200
        assert listener.content_type.startswith("text/event-stream")
        assert wait_until(lambda: listener.cursor == before, timeout=5)
        make.config(tenant, "db.url", "postgres://db/app")
        make.secret(tenant, "db.password", "hunter2-very-secret")
        make.flag(tenant, "new_checkout", environment=environments["production"])
        expected = list(Event.objects.filter(pk__gt=before).order_by("id"))
        assert len(expected) == 3
        assert wait_until(lambda: len(listener.events) >= 3, timeout=10), listener.events

    assert _ids(listener) == [e.pk for e in expected]
    assert [e["event"] for e in listener.events] == ["config.created", "config.created", "flag.created"]
    for sent, event in zip(listener.events, expected, strict=True):
        assert json.loads(sent["data"]) == json.loads(json.dumps(event_payload(event)))
    assert "hunter2" not in json.dumps(listener.events)


def test_stream__other_tenants_change__is_not_sent(hub_server, tenant, other_tenant, make_key):
    key = make_key(tenant=tenant, scopes=["events:read"])
    with Listener(hub_server, key) as listener:
        make.config(other_tenant, "theirs", 1)
        make.config(tenant, "ours", 2)
        assert wait_until(lambda: listener.events, timeout=10)
    assert [json.loads(e["data"])["data"]["key"] for e in listener.events] == ["ours"]


def test_stream__last_event_id__replays_exactly_the_missed_events_then_live(hub_server, tenant, make_key):
    from events.models import Event

    key = make_key(tenant=tenant, scopes=["events:read"])
    make.config(tenant, "a", 1)
    seen = Event.objects.filter(tenant=tenant).latest("id").pk
    make.config(tenant, "b", 2)
    make.config(tenant, "c", 3)
    missed = list(Event.objects.filter(tenant=tenant, pk__gt=seen).order_by("id").values_list("id", flat=True))

    with Listener(hub_server, key, headers={"Last-Event-ID": str(seen)}) as listener:
        assert wait_until(lambda: len(listener.events) >= 2, timeout=10)
        make.config(tenant, "d", 4)
        assert wait_until(lambda: len(listener.events) >= 3, timeout=10)
    live = Event.objects.filter(tenant=tenant).latest("id").pk
    assert _ids(listener) == [*missed, live]

    with Listener(hub_server, key, query=f"?after={missed[0]}") as by_query:
        assert wait_until(lambda: len(by_query.events) >= 2, timeout=10)
    assert _ids(by_query) == [missed[1], live]


def test_stream__cursor_older_than_the_outbox_keeps__sends_one_reset_then_live(hub_server, tenant, make_key):
    from events.models import Event

    key = make_key(tenant=tenant, scopes=["events:read"])
    make.config(tenant, "a", 1)
    make.config(tenant, "b", 2)
    first, second = Event.objects.order_by("id").values_list("id", flat=True)[:2]
    Event.objects.filter(pk__lte=second).delete()  # what pruning the outbox would do
    latest = Event.objects.latest("id").pk

    with Listener(hub_server, key, headers={"Last-Event-ID": str(first - 1)}) as listener:
        assert wait_until(lambda: listener.events, timeout=10)
        make.config(tenant, "c", 3)
        assert wait_until(lambda: len(listener.events) >= 2, timeout=10)
    reset, live = listener.events[:2]
    assert reset["event"] == "reset"
    assert int(reset["id"]) == latest == json.loads(reset["data"])["cursor"]
    assert [e["event"] for e in listener.events].count("reset") == 1
    assert json.loads(live["data"])["data"]["key"] == "c"


def test_stream__filters__send_only_matching_events(hub_server, tenant, make_key, environments):
    key = make_key(tenant=tenant, scopes=["events:read"])
    query = "?types=config&environment=production&service=billing&key_prefix=db."
    with Listener(hub_server, key, query=query) as listener:
        make.config(tenant, "db.url", 1, environment=environments["production"], service_name="billing")
        make.config(tenant, "db.url", 2, environment=environments["staging"], service_name="billing")
        make.config(tenant, "db.pool", 3, environment=environments["production"], service_name="search")
        make.config(tenant, "cache.ttl", 4, environment=environments["production"], service_name="billing")
        make.flag(tenant, "db.flag", environment=environments["production"])
        make.config(tenant, "db.host", 5, environment=environments["production"], service_name="billing")
        assert wait_until(lambda: len(listener.events) >= 2, timeout=10)
    assert [json.loads(e["data"])["data"]["key"] for e in listener.events] == ["db.url", "db.host"]


def test_stream__bad_key__401_json_before_the_stream(hub_server, db):
    response = httpx.get(f"{hub_server}/api/v1/stream", headers={**_auth("chk_nope_bad"), "Accept": "text/event-stream"},
                         timeout=10)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == "not_authenticated" or response.json()["error"]["code"]


def test_stream__key_without_events_read__403_json_before_the_stream(hub_server, tenant, make_key):
    key = make_key(tenant=tenant, scopes=["configs:read"])
    response = httpx.get(f"{hub_server}/api/v1/stream", headers={**_auth(key), "Accept": "text/event-stream"},
                         timeout=10)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/json")
    assert "events:read" in response.json()["error"]["message"]


def test_stream__unknown_parameter_or_filter__400_json(hub_server, tenant, make_key):
    key = make_key(tenant=tenant, scopes=["events:read"])
    typo = httpx.get(f"{hub_server}/api/v1/stream?enviroment=production", headers=_auth(key), timeout=10)
    bad_type = httpx.get(f"{hub_server}/api/v1/stream?types=config,nope", headers=_auth(key), timeout=10)
    bad_id = httpx.get(f"{hub_server}/api/v1/stream", headers={**_auth(key), "Last-Event-ID": "x"}, timeout=10)
    assert (typo.status_code, typo.json()["error"]["details"]) == (400, {"enviroment": ["Unknown query parameter."]})
    assert bad_type.status_code == 400, bad_type.text
    assert list(bad_type.json()["error"]["details"]) == ["types"]
    assert bad_id.status_code == 400 and list(bad_id.json()["error"]["details"]) == ["Last-Event-ID"]


def test_stream__listeners_beyond_the_process_cap__503_with_retry_after_and_the_api_still_answers(
        hub_server, tenant, make_key):
    key = make_key(tenant=tenant, scopes=["events:read", "configs:read"])
    listeners = [Listener(hub_server, key) for _ in range(MAX_LISTENERS)]
    try:
        listeners[0].__enter__()
        threads = thread_count(hub_server)
        for listener in listeners[1:]:
            listener.__enter__()
        assert [listener.status for listener in listeners] == [200] * MAX_LISTENERS
        assert thread_count(hub_server) == threads  # a listener holds no thread
        refused = httpx.get(f"{hub_server}/api/v1/stream", headers=_auth(key), timeout=10)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "5"
        assert refused.json()["error"]["code"] == "stream_capacity"
        assert httpx.get(f"{hub_server}/api/v1/configs/", headers=_auth(key), timeout=10).status_code == 200
    finally:
        for listener in listeners:
            listener.stop()
    # A closed listener gives its place back.
    def admitted() -> bool:
        probe = Listener(hub_server, key)
        with probe:
            return probe.status == 200

    assert wait_until(admitted, timeout=15)


def test_stream__quiet__sends_a_keepalive_comment_every_interval(hub_server, tenant, make_key):
    key = make_key(tenant=tenant, scopes=["events:read"])
    with Listener(hub_server, key) as listener:
        assert wait_until(lambda: listener.comments.count("keepalive") >= 2, timeout=KEEPALIVE * 5)
    assert listener.comments[0] == "connected"
    assert listener.events == []


def test_stream__no_redis_change_made_in_the_same_process__wakes_its_listeners_at_once(redisless_server, tenant,
                                                                                       make_key):
    from events.models import Event

    key = make_key(tenant=tenant, scopes=["events:read", "configs:write"])
    with Listener(redisless_server, key) as listener:
        assert wait_until(lambda: listener.cursor is not None, timeout=5)
        written = httpx.put(f"{redisless_server}/config/tenants/{tenant.slug}/configs/made.here",
                            json={"config_value": 1}, headers=_auth(key), timeout=10)
        assert written.status_code in (200, 201), written.text
        # Well before the 30 s poll: the commit's own notification woke the listener.
        assert wait_until(lambda: listener.events, timeout=5)
    event = Event.objects.get(key="made.here")
    assert _ids(listener) == [event.pk]


def test_stream__procfile_web_process__serves_the_api_and_the_stream_on_one_base_url(production_gunicorn, tenant,
                                                                                    make_key):
    base = production_gunicorn
    key = make_key(tenant=tenant, scopes=["events:read", "configs:read"])
    with Listener(base, key) as listener:
        assert (listener.status, listener.content_type) == (200, "text/event-stream")
        assert httpx.get(f"{base}/api/v1/configs/", headers=_auth(key), timeout=10).status_code == 200
        make.config(tenant, "via.gunicorn", 1)
        assert wait_until(lambda: listener.events, timeout=10)
    assert json.loads(listener.events[0]["data"])["data"]["key"] == "via.gunicorn"


def test_stream__served_without_asgi__answers_once_with_the_events_after_the_cursor_and_retry(tenant, make_key):
    from rest_framework.test import APIClient

    from events.models import Event

    key = make_key(tenant=tenant, scopes=["events:read"])
    make.config(tenant, "a", 1)
    after = Event.objects.latest("id").pk
    make.config(tenant, "b", 2)
    latest = Event.objects.latest("id")
    client = APIClient()  # Django's own (WSGI-style) handler, as under manage.py runserver

    response = client.get(f"/api/v1/stream?after={after}", HTTP_AUTHORIZATION=f"ApiKey {key}")
    fresh = client.get("/api/v1/stream", HTTP_AUTHORIZATION=f"ApiKey {key}")
    denied = client.get("/api/v1/stream", HTTP_AUTHORIZATION=f"ApiKey {make_key(tenant=tenant, scopes=['configs:read'])}")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    text = response.content.decode()
    assert text.startswith("retry: 1000\n: connected\n\n")
    assert f"id: {latest.pk}\nevent: config.created\n" in text
    assert text.count("event: ") == 1
    assert fresh.content.decode() == f"retry: 1000\n: connected\nid: {latest.pk}\n\n"
    assert denied.status_code == 403


SMALL_BUFFER = 16 * 1024
BIG_EVENTS = 60


@pytest.fixture(scope="module")
def small_buffer_server(django_db_setup, django_db_blocker, tmp_path_factory):
    """The hub with a 16 KiB buffer per listener (EVENTS_STREAM_BUFFER)."""
    with django_db_blocker.unblock():
        env = server_env(EVENTS_STREAM_BUFFER=str(SMALL_BUFFER))
    log = tmp_path_factory.mktemp("stream-slow") / "uvicorn.log"
    with uvicorn_hub(log, env) as base:
        yield base, log


def _stalled_listener(base: str, key: str, after: int) -> socket.socket:
    """A stream connection that reads its headers and then nothing (a tiny receive buffer)."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(f"GET /api/v1/stream?after={after} HTTP/1.0\r\nHost: {host}\r\nAuthorization: ApiKey {key}\r\n"
                 "Accept: text/event-stream\r\n\r\n".encode())
    sock.settimeout(20)
    head = b""
    while b": connected" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


def _read_to_the_end(sock: socket.socket, seconds: float = 30) -> str:
    """Everything the connection still holds, up to its end (fails if it does not end)."""
    deadline = time.monotonic() + seconds
    sock.settimeout(5)
    data = b""
    try:
        while chunk := sock.recv(1 << 20):
            data += chunk
            assert time.monotonic() < deadline, "the server kept the connection open"
    except ConnectionResetError:
        pass
    return data.decode()


def test_stream__a_listener_that_stops_reading__is_closed_the_others_get_everything_and_it_resumes_by_id(
        small_buffer_server, tenant, make_key):
    from django.db import transaction

    from events.models import Event
    from events.services import event_record

    base, log = small_buffer_server
    key = make_key(tenant=tenant, scopes=["events:read"])
    before = Event.objects.latest("id").pk
    stalled = _stalled_listener(base, key, before)
    try:
        with Listener(base, key, query=f"?after={before}") as reading:
            for i in range(BIG_EVENTS):  # 7 MB: more than every buffer on the way (the kernel's: 4 MB at most)
                with transaction.atomic():
                    event_record(tenant=tenant, resource_type="config", action="updated", actor="t", key=f"big.{i}",
                                 data={"blob": "x" * 120_000})
            assert wait_until(lambda: len(reading.events) >= BIG_EVENTS, timeout=60)
        # The server closes the one that does not read (and says so in its log) ...
        assert wait_until(lambda: "closing it" in log.read_text(), timeout=30)
        received = _read_to_the_end(stalled)  # ... so what it holds ends, no keepalive follows.
    finally:
        stalled.close()
    expected = list(Event.objects.filter(pk__gt=before).order_by("id").values_list("id", flat=True))
    assert _ids(reading) == expected

    complete = [int(line[4:]) for block in received.split("\n\n")[:-1] for line in block.split("\n")
                if line.startswith("id: ")]
    assert complete == expected[:len(complete)] and len(complete) < len(expected)
    with Listener(base, key, headers={"Last-Event-ID": str(complete[-1] if complete else before)}) as again:
        assert wait_until(lambda: len(again.events) >= len(expected) - len(complete), timeout=30)
    assert complete + _ids(again) == expected


def test_openapi_schema__shows_the_streams_with_their_parameters_and_text_event_stream(client, admin_user):
    client.force_login(admin_user)
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]

    stream, ofrep, long_poll = (paths["/api/v1/stream"]["get"], paths["/ofrep/v1/stream"]["get"],
                                paths["/api/v1/events/"]["get"])
    assert {p["name"] for p in stream["parameters"]} == {"after", "types", "environment", "service", "key_prefix",
                                                         "tenant", "Last-Event-ID"}
    assert list(stream["responses"]["200"]["content"]) == ["text/event-stream"]
    assert {"400", "401", "403", "503"} <= set(stream["responses"])
    assert list(ofrep["responses"]["200"]["content"]) == ["text/event-stream"]
    assert "Last-Event-ID" in {p["name"] for p in ofrep["parameters"]}
    assert {"OfrepStreamToken": []} in ofrep["security"]
    bulk = paths["/ofrep/v1/evaluate/flags"]["post"]
    assert {"flagConfigEtag", "flagConfigLastModified"} <= {p["name"] for p in bulk["parameters"]}
    assert {p["name"] for p in long_poll["parameters"]} >= {"after", "wait", "limit"}
