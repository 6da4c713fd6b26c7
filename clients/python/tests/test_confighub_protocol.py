"""The client's side of the protocol, against a scripted stand-in hub (the standard
library's HTTP server): ETag revalidation, Retry-After, event relevance, the
atomic last-known-good copy. The tests against a real hub are in the project's
tests/clients/test_python_client.py."""
from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from confighub import ConfigClient, ConfigHubError
from confighub import cache as lkg


class ScriptedHub:
    """Answers the bundle from ``self.rows`` with an ETag (304 on a match), and the
    events route from ``self.events_answers`` (a list of (status, headers, body)),
    recording every request as (monotonic time, method, path, headers)."""

    def __init__(self):
        self.rows = [{"key": "svc.a", "value": 1}]
        self.etag = '"v1"'
        self.events_answers: list[tuple[int, dict, dict]] = []
        # The stream's answers, one per connection: (status, text); None: no stream (404).
        # The text is sent, then the answer ends (the client reconnects with Last-Event-ID).
        self.stream_answers: list[tuple[int, str]] | None = None
        self.requests: list[tuple[float, str, str, dict]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body=None, headers=None):
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802 - http.server's name
                hub.requests.append((time.monotonic(), "GET", self.path, dict(self.headers)))
                if self.path.startswith("/api/v1/config/service/svc"):
                    if self.headers.get("If-None-Match") == hub.etag:
                        return self._send(304, headers={"ETag": hub.etag})
                    return self._send(200, hub.rows, {"ETag": hub.etag})
                if self.path.startswith("/api/v1/stream") and hub.stream_answers is not None:
                    deadline = time.monotonic() + 3  # a stream with nothing to say yet: held
                    while not hub.stream_answers and time.monotonic() < deadline:
                        time.sleep(0.01)
                    if not hub.stream_answers:
                        return self._send(503, {"error": {"code": "stream_capacity", "message": "x", "details": None}},
                                          {"Retry-After": "0"})
                    status, text = hub.stream_answers.pop(0)
                    data = text.encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return None
                if self.path.startswith("/api/v1/events/"):
                    if "wait=0" in self.path:
                        return self._send(200, {"events": [], "cursor": 0})
                    if hub.events_answers:
                        status, headers, body = hub.events_answers.pop(0)
                        return self._send(status, body, headers)
                    time.sleep(0.2)
                    return self._send(200, {"events": [], "cursor": 0})
                return self._send(404, {"error": {"code": "not_found", "message": "no route", "details": None}})

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client closed mid-answer (close() cuts its long poll)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def calls(self, prefix: str) -> list[tuple[float, str, str, dict]]:
        return [r for r in self.requests if r[2].startswith(prefix)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub():
    server = ScriptedHub()
    yield server
    server.close()


def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_events_429_with_retry_after__next_events_request_waits_that_long(hub, tmp_path):
    hub.events_answers = [(429, {"Retry-After": "1"}, {"error": {"code": "too_many_waits", "message": "x", "details": None}})]
    client = ConfigClient(hub.url, "k", service="svc", environment="prod", cache_dir=str(tmp_path), retry_min=0.01).start()
    try:
        assert _wait(lambda: len([c for c in hub.calls("/api/v1/events/") if "wait=0" not in c[2]]) >= 2)
    finally:
        client.close()
    polls = [c[0] for c in hub.calls("/api/v1/events/") if "wait=0" not in c[2]]
    assert polls[1] - polls[0] >= 0.95


def test_relevant_event__bundle_revalidated_with_if_none_match__other_service_event_ignored(hub, tmp_path):
    other = {"id": 1, "type": "config.updated", "data": {"resource_type": "config", "service_name": "users",
                                                         "environment": "prod", "key": "users.a"}}
    ours = {"id": 2, "type": "config.updated", "data": {"resource_type": "config", "service_name": "svc",
                                                        "environment": "prod", "key": "svc.a"}}
    hub.events_answers = [(200, {}, {"events": [other], "cursor": 1})]
    client = ConfigClient(hub.url, "k", service="svc", environment="prod", cache_dir=str(tmp_path), retry_min=0.01).start()
    try:
        assert _wait(lambda: not hub.events_answers)
        fetches_after_other = len(hub.calls("/api/v1/config/"))
        hub.rows, hub.etag = [{"key": "svc.a", "value": 2}], '"v2"'
        assert client.get("svc.a") == 1  # the other service's event fetched nothing
        hub.events_answers = [(200, {}, {"events": [ours], "cursor": 2})]
        assert _wait(lambda: client.get("svc.a") == 2)
    finally:
        client.close()
    fetches = hub.calls("/api/v1/config/")
    assert fetches[0][3].get("If-None-Match") is None
    assert all(call[3].get("If-None-Match") == '"v1"' for call in fetches[1:fetches_after_other])
    with open(client.cache_file) as saved:
        assert json.load(saved)["etag"] == '"v2"'


def test_start__bad_key__raises_at_once(tmp_path):
    class Refusing(ScriptedHub):
        pass

    hub = Refusing()
    hub.rows = None
    try:
        client = ConfigClient(hub.url, "k", service="nosuch", environment="prod", cache_dir=str(tmp_path))
        with pytest.raises(ConfigHubError) as raised:
            client.start()
        assert raised.value.status == 404 and raised.value.code == "not_found"
    finally:
        hub.close()


def test_cache_write__replaces_atomically_and_leaves_no_temp_file(tmp_path):
    path = lkg.cache_path(str(tmp_path), url="http://hub", api_key="secret-key", tenant=None, service="svc",
                          environment="prod")
    lkg.write(path, etag='"a"', rows=[{"key": "svc.a", "value": 1}])
    lkg.write(path, etag='"b"', rows=[{"key": "svc.a", "value": 2}])
    assert lkg.read(path) == ('"b"', [{"key": "svc.a", "value": 2}])
    assert os.listdir(tmp_path) == [os.path.basename(path)]
    assert "secret-key" not in path


def test_release_pinned_event__own_service_revalidates__created_and_other_service_ignored(hub, tmp_path):
    def release(event_id, action, service):
        return {"id": event_id, "type": f"release.{action}", "data": {
            "resource_type": "release", "action": action, "service_name": service, "environment": "prod"}}

    hub.events_answers = [(200, {}, {"events": [release(1, "created", ""), release(2, "pinned", "users")],
                                     "cursor": 2})]
    client = ConfigClient(hub.url, "k", service="svc", environment="prod", cache_dir=str(tmp_path), retry_min=0.01).start()
    try:
        assert _wait(lambda: not hub.events_answers)
        hub.rows, hub.etag = [{"key": "svc.a", "value": 2}], '"v2"'
        assert client.get("svc.a") == 1  # neither event is about what svc reads
        hub.events_answers = [(200, {}, {"events": [release(3, "pinned", "svc")], "cursor": 3})]
        assert _wait(lambda: client.get("svc.a") == 2)
    finally:
        client.close()


def _sse(event_id, event_type, data):
    return f"id: {event_id}\nevent: {event_type}\ndata: {json.dumps(data)}\n\n"


def test_stream__relevant_event_refetches__reconnects_with_last_event_id__reset_refetches(hub, tmp_path):
    ours = {"id": 7, "type": "config.updated", "data": {"resource_type": "config", "service_name": "svc",
                                                        "environment": "prod", "key": "svc.a"}}
    hub.stream_answers = [(200, ": connected\nid: 5\n\n")]  # the head: from event 5 on
    client = ConfigClient(hub.url, "k", service="svc", environment="prod", cache_dir=str(tmp_path), retry_min=0.01)
    client.start()
    try:
        assert _wait(lambda: not hub.stream_answers)
        assert _wait(lambda: len(hub.calls("/api/v1/config/")) >= 2)  # the start's fetch, the one after the head
        hub.rows, hub.etag = [{"key": "svc.a", "value": 2}], '"v2"'
        hub.stream_answers = [(200, "retry: 10\n: connected\n\n" + _sse(7, "config.updated", ours))]
        assert _wait(lambda: client.get("svc.a") == 2)
        assert client.transport == "stream"
        hub.rows, hub.etag = [{"key": "svc.a", "value": 3}], '"v3"'
        hub.stream_answers = [(200, ": connected\n\n" + _sse(9, "reset", {"cursor": 9}))]
        assert _wait(lambda: client.get("svc.a") == 3)
        assert _wait(lambda: len(hub.calls("/api/v1/stream")) >= 4)
    finally:
        client.close()
    streams = hub.calls("/api/v1/stream")
    assert [s[3].get("Last-Event-ID") for s in streams[:4]] == [None, "5", "7", "9"]
    assert "types=config%2Cschema%2Cenvironment%2Ctenant%2Crelease%2Cinstance" in streams[0][2]
    assert not hub.calls("/api/v1/events/")  # the stream did it all


def test_stream_missing__falls_back_to_long_poll_with_the_same_events(hub, tmp_path):
    ours = {"id": 2, "type": "config.updated", "data": {"resource_type": "config", "service_name": "svc",
                                                        "environment": "prod", "key": "svc.a"}}
    client = ConfigClient(hub.url, "k", service="svc", environment="prod", cache_dir=str(tmp_path), retry_min=0.01)
    client.start()  # the scripted hub has no stream: 404
    try:
        assert _wait(lambda: client.transport == "longpoll")
        hub.rows, hub.etag = [{"key": "svc.a", "value": 2}], '"v2"'
        hub.events_answers = [(200, {}, {"events": [ours], "cursor": 2})]
        assert _wait(lambda: client.get("svc.a") == 2)
    finally:
        client.close()
    assert len(hub.calls("/api/v1/stream")) == 1
