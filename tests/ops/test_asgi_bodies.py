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


def test_chunked_body__json_error_not_a_hang(hub, caller):
    def chunks():
        yield b'{"flag_name": "checkout",'
        yield b' "environment": "production"}'

    served = _evaluate(hub, caller, chunks())
    assert served.status_code in (200, 400)  # (a WSGI application reads no chunked body)
    assert "error" in served.json() or served.json()["enabled"] is True


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
