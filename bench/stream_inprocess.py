"""The change stream in-process: what one listener costs the event loop, without sockets.

    .venv/bin/python bench/stream_inprocess.py [LISTENERS]    (default 2,000)

The ASGI application of config_hub/asgi.py is called directly for LISTENERS stream
requests (an ASGI ``receive``/``send`` pair per listener, no socket, no Redis: the
hub is woken by hand as a commit would wake it), on the database of bench/listeners
(``BENCH_DATABASE``, default config_hub_bench_listeners: run ``bench/listeners``
once first, or ``bench/run`` with the same BENCH_DATABASE). It prints, per connect
and per listener of one change:

- CPU µs (all threads of the process; machine noise moves it),
- Python function calls on the event loop's thread (cProfile): repeatable to the
  call, the figure to compare when changing the stream's code (the checks and the
  outbox reads on the hub's threads are not in it);
- the outbox reads the fan-out made (one per process is the design).
"""
from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.update({
    "DJANGO_SETTINGS_MODULE": "config_hub.settings.base", "DJANGO_DEBUG": "false", "REDIS_URL": "", "LOG_LEVEL": "ERROR",
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{os.environ.get('BENCH_DATABASE', 'config_hub_bench_listeners')}",
    "API_THROTTLE_RATE": "off", "ALLOWED_HOSTS": "*", "SECURE_SSL_REDIRECT": "false", "SECRET_KEY": "bench-" + "x" * 50,
    "JWT_SIGNING_KEY": "bench-jwt-" + "y" * 50, "SERVICE_JWT_SECRET": "bench-svc-" + "z" * 50,
    "EVENTS_STREAM_MAX_PER_PROCESS": "100000", "EVENTS_POLL_INTERVAL": "3600",
})
os.environ.setdefault("FERNET_KEYS", "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=")

import uvloop  # noqa: E402

from config_hub.asgi import application  # noqa: E402
from events import stream  # noqa: E402
from events.models import Event  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tenants.services.api_keys import api_key_create  # noqa: E402


class FakeListener:
    """One stream request to the ASGI application: the first body chunk marks the
    connect, a chunk carrying an event marks its delivery."""

    def __init__(self, key: str):
        self.headers = [(b"host", b"127.0.0.1"), (b"authorization", f"ApiKey {key}".encode())]
        self.connected = asyncio.get_running_loop().create_future()
        self.delivered: asyncio.Future | None = None
        self._asked = False
        self.flow = self  # as uvicorn's connection: its transport takes writes (config_hub.asgi.BoundedSend)
        self.write_paused = False

    def scope(self) -> dict:
        return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
                "path": "/api/v1/stream", "raw_path": b"/api/v1/stream", "query_string": b"", "root_path": "",
                "headers": self.headers, "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}

    async def receive(self) -> dict:
        if not self._asked:
            self._asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client never leaves
        return {}

    async def send(self, message: dict) -> None:
        if message["type"] != "http.response.body":
            return
        if not self.connected.done():
            self.connected.set_result(None)
        elif b"event:" in message.get("body", b"") and self.delivered is not None and not self.delivered.done():
            self.delivered.set_result(None)


def _insert_event(tenant: Tenant) -> None:
    from django.db import connection

    Event.objects.create(tenant=tenant, tenant_slug=tenant.slug, resource_type="config", action="updated",
                         key="bench.inprocess", actor="system:bench")
    connection.close()


async def main(count: int) -> None:
    loop = asyncio.get_running_loop()
    tenant = await loop.run_in_executor(None, lambda: Tenant.objects.get(slug="t0"))
    _, key = await loop.run_in_executor(None, lambda: api_key_create(name="bench-inprocess", tenant=tenant,
                                                                     scopes=["events:read"], actor="system:bench"))
    listeners, tasks = [], []

    async def connect(n: int) -> None:
        batch = [FakeListener(key) for _ in range(n)]
        for listener in batch:
            tasks.append(loop.create_task(application(listener.scope(), listener.receive, listener.send)))
        await asyncio.gather(*(listener.connected for listener in batch))
        listeners.extend(batch)

    await connect(100)  # warm: the hub, its threads, the key in memory
    profile = cProfile.Profile()
    cpu, wall = time.process_time(), time.perf_counter()
    profile.enable()
    for _ in range(count // 100):
        await connect(100)
    profile.disable()
    connect_cpu, connect_wall = time.process_time() - cpu, time.perf_counter() - wall
    connect_calls = pstats.Stats(profile).total_calls
    held = len(listeners)
    reads = [0]
    original = stream._events_after

    def counted(*args):
        reads[0] += 1
        return original(*args)

    stream._events_after = counted
    rows = []
    for _ in range(3):
        await loop.run_in_executor(None, _insert_event, tenant)
        for listener in listeners:
            listener.delivered = loop.create_future()
        reads[0] = 0
        profile = cProfile.Profile()
        cpu, wall = time.process_time(), time.perf_counter()
        profile.enable()
        stream.hub().wake_all()
        await asyncio.gather(*(listener.delivered for listener in listeners))
        profile.disable()
        rows.append((time.process_time() - cpu, time.perf_counter() - wall, pstats.Stats(profile).total_calls, reads[0]))
        await asyncio.sleep(0.2)
    stream._events_after = original
    n = count - count % 100
    print(f"{n} connects: {connect_cpu / n * 1e6:.0f} µs CPU each ({connect_wall / n * 1e6:.0f} µs wall, 100 at "
          f"a time), {connect_calls / n:.0f} calls each on the event loop's thread")
    for i, (cpu_s, wall_s, calls, read_count) in enumerate(rows, 1):
        print(f"change {i} to {held} listeners: {wall_s * 1000:.0f} ms wall, {cpu_s / held * 1e6:.0f} µs CPU and "
              f"{calls / held:.0f} calls per listener, {read_count} outbox read(s)")
    for task in tasks:
        task.cancel()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
