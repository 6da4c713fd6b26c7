"""Request bodies under the Procfile's server (uvicorn, config_hub.asgi): a small body
is read on the event loop before its request takes a thread (config_hub.asgi.ThreadedWSGI);
larger and chunked bodies are read as before. What a caller sees is the same either way,
and a client that sends its body slowly holds no thread."""
from __future__ import annotations

import json
import socket
import time

import pytest
import requests

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 2


@pytest.fixture(scope="module")
def hub(django_db_setup, django_db_blocker, tmp_path_factory):
    from tests.hub_servers import server_env, uvicorn_hub

    with django_db_blocker.unblock():
        env = server_env(GUNICORN_THREADS=str(THREADS))
    with uvicorn_hub(tmp_path_factory.mktemp("bodies") / "uvicorn.log", env) as base:
        yield base


@pytest.fixture
def caller(make_key, environments):
    from tests import factories as make

    tenant = make.tenant(f"bodies-{time.monotonic_ns()}")
    make.flag(tenant, "checkout", environment=environments["production"], is_enabled=True)
    make.config(tenant, "plain.read", 41)
    return make_key(tenant=tenant, scopes=["flags:read", "configs:read"], name="bodies")


def _evaluate(hub: str, key: str, body, **headers) -> requests.Response:
    return requests.post(f"{hub}/api/v1/feature-flags/evaluate", data=body, timeout=30,
                         headers={"Authorization": f"ApiKey {key}", "Content-Type": "application/json", **headers})


def test_small_body__evaluated_like_the_in_process_answer(hub, caller, client_for):
    body = json.dumps({"flag_name": "checkout", "environment": "production", "user_id": "u-1"})
    served = _evaluate(hub, caller, body)
    in_process = client_for(caller).post("/api/v1/feature-flags/evaluate", body, content_type="application/json")
    assert served.status_code == in_process.status_code == 200
    assert served.json() == in_process.json()
    assert served.json()["enabled"] is True


def test_body_larger_than_read_ahead__same_answer_as_in_process(hub, caller, client_for):
    # 200 KiB of context: beyond the 64 KiB read on the event loop, under the 1 MiB request limit.
    body = json.dumps({"flag_name": "checkout", "environment": "production",
                       "context": {"properties": {"blob": "x" * 200_000}}})
    served = _evaluate(hub, caller, body)
    in_process = client_for(caller).post("/api/v1/feature-flags/evaluate", body, content_type="application/json")
    assert served.status_code == in_process.status_code
    assert served.json() == in_process.json()


def test_body_over_the_request_limit__413_json(hub, caller):
    served = _evaluate(hub, caller, json.dumps({"flag_name": "checkout", "pad": "x" * 1_200_000}))
    assert served.status_code == 413
    assert served.json()["error"]["code"] == "payload_too_large"


def test_chunked_body__evaluated_like_one_with_a_length(hub, caller):
    def chunks():
        yield b'{"flag_name": "checkout",'
        yield b' "environment": "production"}'

    served = _evaluate(hub, caller, chunks())
    assert served.status_code == 200, served.text
    assert served.json()["enabled"] is True


def test_chunked_body_over_the_read_ahead__411_json(hub, caller):
    def chunks():
        yield b'{"flag_name": "checkout", "pad": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}'

    served = _evaluate(hub, caller, chunks())
    assert served.status_code == 411
    assert served.json()["error"]["code"] == "length_required"


def test_slow_bodies_hold_no_thread__reads_answer_while_they_trickle(hub, caller):
    """More clients than the server has threads, each sending its headers and part of
    its body, then nothing: a config read still answers at once; when they finish
    sending, each gets its evaluation."""
    body = json.dumps({"flag_name": "checkout", "environment": "production"}).encode()
    port = int(hub.rsplit(":", 1)[1])
    slow = []
    for _ in range(THREADS * 3):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(b"POST /api/v1/feature-flags/evaluate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Authorization: ApiKey " + caller.encode() + b"\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body[:10])
        slow.append(sock)
    time.sleep(0.5)
    started = time.monotonic()
    read = requests.get(f"{hub}/api/v1/config/plain.read?environment=production",
                        headers={"Authorization": f"ApiKey {caller}"}, timeout=30)
    assert read.status_code == 200 and read.json()["value"] == 41
    assert time.monotonic() - started < 5
    for sock in slow:
        sock.sendall(body[10:])
    for sock in slow:
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        sock.close()
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert json.loads(payload)["enabled"] is True


def test_client_gone_mid_body__server_keeps_answering(hub, caller):
    port = int(hub.rsplit(":", 1)[1])
    for _ in range(THREADS * 2):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(b"POST /api/v1/feature-flags/evaluate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"flag")
        sock.close()
    served = _evaluate(hub, caller, json.dumps({"flag_name": "checkout", "environment": "production"}))
    assert served.status_code == 200 and served.json()["enabled"] is True


# --- the bridge itself (config_hub.asgi.ThreadedWSGI), with WSGI applications of its own --------

def _serve(app, *, method="GET", body=b"", chunks=None):
    """One request through ThreadedWSGI: the ASGI messages sent back, and what the app read."""
    import asyncio

    from config_hub.asgi import ThreadedWSGI

    parts = chunks if chunks is not None else [body]
    headers = [] if chunks is not None else [(b"content-length", str(len(body)).encode())]

    async def main():
        incoming = [{"type": "http.request", "body": part, "more_body": i < len(parts) - 1} for i, part in enumerate(parts)]
        sent = []

        async def receive():
            return incoming.pop(0) if incoming else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": method, "path": "/x", "raw_path": b"/x", "query_string": b"",
                 "root_path": "", "headers": headers, "server": ("testserver", 80), "client": ("127.0.0.1", 1),
                 "scheme": "http", "http_version": "1.1", "asgi": {"version": "3.0"}}
        await ThreadedWSGI(app, workers=2)(scope, receive, send)
        return sent

    return asyncio.run(main())


def test_bridge__one_chunk_answer__status_headers_and_the_whole_body_in_order():
    def app(environ, start_response):
        start_response("201 Created", [("Content-Type", "text/plain"), ("X-One", "1")])
        return [b"made"]

    sent = _serve(app)
    assert sent == [{"type": "http.response.start", "status": 201,
                     "headers": [(b"content-type", b"text/plain"), (b"x-one", b"1")]},
                    {"type": "http.response.body", "body": b"made", "more_body": False}]


def test_bridge__streamed_answer__every_chunk_in_order_the_last_one_ends_it():
    def app(environ, start_response):
        start_response("200 OK", [])
        return (f"part {i};".encode() for i in range(50))

    sent = _serve(app)
    assert sent[0]["type"] == "http.response.start"
    bodies = sent[1:]
    assert b"".join(m["body"] for m in bodies) == b"".join(f"part {i};".encode() for i in range(50))
    assert [m["more_body"] for m in bodies] == [True] * 49 + [False]


def test_bridge__empty_answer_and_the_write_callable():
    def empty(environ, start_response):
        start_response("204 No Content", [])
        return []

    def writes(environ, start_response):
        write = start_response("200 OK", [])
        write(b"written ")
        return [b"returned"]

    assert _serve(empty)[1:] == [{"type": "http.response.body", "body": b"", "more_body": False}]
    sent = _serve(writes)
    assert b"".join(m["body"] for m in sent[1:]) == b"written returned"
    assert sent[-1]["more_body"] is False


@pytest.mark.parametrize("how", ["read ahead", "chunked"])
def test_bridge__request_body_read_whole_either_way(how):
    seen = []

    def app(environ, start_response):
        seen.append(environ["wsgi.input"].read())
        start_response("200 OK", [])
        return [b"ok"]

    if how == "read ahead":
        _serve(app, method="POST", body=b'{"a": 1}')
    else:
        _serve(app, method="POST", chunks=[b'{"a"', b": 1}"])
    assert seen == [b'{"a": 1}']


def test_bridge__send_fails_mid_stream__the_thread_is_not_left_waiting():
    """An answer the server refuses part-way (here, longer than its Content-Length):
    the request fails, its thread comes back to the pool."""
    import asyncio

    from config_hub.asgi import ThreadedWSGI

    finished = []

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "5")])

        def chunks():
            for i in range(100):  # far more than the queue holds
                yield b"chunk %d;" % i
            finished.append(True)

        return chunks()

    async def main():
        async def receive():
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.body" and len(message["body"]) > 5:
                raise RuntimeError("Response content longer than Content-Length")

        scope = {"type": "http", "method": "GET", "path": "/x", "raw_path": b"/x", "query_string": b"",
                 "root_path": "", "headers": [], "server": ("testserver", 80), "client": ("127.0.0.1", 1),
                 "scheme": "http", "http_version": "1.1", "asgi": {"version": "3.0"}}
        await asyncio.wait_for(ThreadedWSGI(app, workers=1)(scope, receive, send), 10)

    with pytest.raises(RuntimeError, match="longer than Content-Length"):
        asyncio.run(main())
    assert finished == [True]
