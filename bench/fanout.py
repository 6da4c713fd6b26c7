"""Fan-out: one config change to 1,000 subscribed webhook receivers, through a real worker.

Run: .venv/bin/python bench/fanout.py   (also the last part of `make bench`)
Its own database (config_hub_bench_fanout) and Redis databases (11, 10). The
receivers are one asyncio HTTP/1.1 server on 127.0.0.1 (keep-alive), one path per
subscription; OUTBOUND_ALLOW lets the hub call loopback (the production policy
otherwise). The worker is the Procfile's (threads pool, concurrency 16).

Two set-ups, BENCH_RECEIVERS subscriptions each (default 1,000):
- global: 40 tenants × 25 subscriptions (the default WEBHOOK_MAX_PER_TENANT), one
  global config change (every tenant's subscribers receive it);
- one tenant: 1,000 subscriptions of one tenant (WEBHOOK_MAX_PER_TENANT raised), a
  change of that tenant: the per-tenant cap (WEBHOOK_TENANT_CONCURRENCY, 4) holds.

Each set-up: one untimed round (the worker warms up), then BENCH_ROUNDS (5) changes,
one at a time. Printed per set-up, medians: from the change's commit until every
receiver has it, and until every delivery is recorded as succeeded (its
DeliveryAttempt written); the connections the receivers saw.
"""
from __future__ import annotations

import asyncio
import base64
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DB = "config_hub_bench_fanout"
N = int(os.environ.get("BENCH_RECEIVERS", "1000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
PER_TENANT = 25
CONCURRENCY = os.environ.get("BENCH_WORKER_CONCURRENCY", "16")
GOAL = 3.0
ENV = {"DJANGO_SETTINGS_MODULE": "config_hub.settings.base", "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB}",
       "REDIS_URL": "redis://127.0.0.1:6379/11", "CELERY_BROKER_URL": "redis://127.0.0.1:6379/10", "LOG_LEVEL": "WARNING",
       "DJANGO_DEBUG": "false", "OUTBOUND_ALLOW": "127.0.0.0/8", "WEBHOOK_MAX_PER_TENANT": str(max(N, PER_TENANT))}
# Production settings (DJANGO_DEBUG=false): secrets of this run, shared with the worker.
ENV.update({"SECRET_KEY": secrets.token_urlsafe(50), "FERNET_KEYS": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "JWT_SIGNING_KEY": secrets.token_urlsafe(50), "SERVICE_JWT_SECRET": secrets.token_urlsafe(50)})
os.environ.update(ENV)


class Receivers:
    """One HTTP/1.1 server (keep-alive) in a thread of its own; answers 204 to every
    POST and records the paths of one event (its ``webhook-id``)."""

    def __init__(self):
        self.cond = threading.Condition()
        self.paths: dict[str, set[str]] = {}  # webhook-id -> paths that received it
        self.complete_at: dict[str, float] = {}  # webhook-id -> when the N-th path had it
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        ready.wait(10)

    def wait(self, event_id: str, timeout: float) -> float | None:
        with self.cond:
            self.cond.wait_for(lambda: event_id in self.complete_at, timeout)
            return self.complete_at.get(event_id)

    def _serve(self, ready: threading.Event) -> None:
        receivers = self

        class Protocol(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport, self.buffer = transport, b""
                receivers.connections += 1

            def data_received(self, data):
                self.buffer += data
                while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
                    lines = self.buffer[:end].decode("latin-1").split("\r\n")
                    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
                    size = end + 4 + int(headers.get("content-length", 0))
                    if len(self.buffer) < size:
                        return
                    self.buffer = self.buffer[size:]
                    receivers.arrived(lines[0].split(" ")[1], headers.get("webhook-id", ""))
                    self.transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")

        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(self.loop.create_server(Protocol, "127.0.0.1", 0, backlog=1024))
        self.port = self.server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    def arrived(self, path: str, event_id: str) -> None:
        with self.cond:
            paths = self.paths.setdefault(event_id, set())
            paths.add(path)
            if len(paths) == N and event_id not in self.complete_at:
                self.complete_at[event_id] = time.perf_counter()
                self.cond.notify_all()


def _psql(sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True)


def _cpu(pids) -> dict[int, float]:
    """CPU seconds (user + system) of each process still there."""
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def _worker_pids(worker_pid: int) -> list[int]:
    """The worker and its PostgreSQL backends (this process's own excluded)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [DB])
        return [worker_pid] + [row[0] for row in cursor.fetchall()]


def _round(receivers: Receivers, change, worker_pid: int, timeout: float = 60) -> tuple[float, float, int, float]:
    """One change: seconds until every receiver has it, until every delivery is
    recorded as succeeded; connections opened to the receivers meanwhile; CPU
    seconds the worker and its database backends spent on it."""
    from events.models import Event, WebhookDelivery

    last = Event.objects.order_by("-id").values_list("pk", flat=True).first() or 0
    receivers.connections = 0
    cpu_before = _cpu(_worker_pids(worker_pid))
    started = time.perf_counter()
    change()  # commits
    event = Event.objects.filter(pk__gt=last, resource_type="config").order_by("id").first()
    complete_at = receivers.wait(str(event.pk), timeout)
    if complete_at is None:
        raise SystemExit(f"only {len(receivers.paths.get(str(event.pk), ()))} of {N} receivers had the change after {timeout} s")
    while WebhookDelivery.objects.filter(event=event, status=WebhookDelivery.SUCCEEDED).count() < N:
        if time.perf_counter() - started > timeout + 30:
            raise SystemExit("deliveries not all recorded as succeeded")
        time.sleep(0.01)
    recorded = time.perf_counter() - started
    cpu_after = _cpu(_worker_pids(worker_pid))
    cpu = sum(seconds - cpu_before.get(pid, 0.0) for pid, seconds in cpu_after.items())
    return complete_at - started, recorded, receivers.connections, cpu


def main() -> None:
    _psql(f"DROP DATABASE IF EXISTS {DB}")
    _psql(f"CREATE DATABASE {DB}")
    subprocess.run(["redis-cli", "-n", "10", "flushdb"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["redis-cli", "-n", "11", "flushdb"], check=True, stdout=subprocess.DEVNULL)
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from events.models import Event
    from events.services import webhook_create
    from tenants.models import ConfigEntry, Tenant
    from tenants.services.configs import config_create, config_update

    receivers = Receivers()
    base = f"http://127.0.0.1:{receivers.port}"
    tenants = [Tenant.objects.create(slug=f"fanout-{t}", name=f"fanout {t}") for t in range(-(-N // PER_TENANT))]
    for i in range(N):
        webhook_create(tenant=tenants[i // PER_TENANT], url=f"{base}/global/{i}", resource_types=["config"],
                       key_prefix="global.", actor="bench")
    solo = Tenant.objects.create(slug="fanout-solo", name="fanout solo")
    for i in range(N):
        webhook_create(tenant=solo, url=f"{base}/solo/{i}", resource_types=["config"], key_prefix="solo.", actor="bench")
    # The subscriptions' own "webhook.created" events are not what is measured:
    # mark them sent (they match no subscription's filter anyway) and clear the queue.
    Event.objects.update(dispatched_at=timezone.now())
    subprocess.run(["redis-cli", "-n", "10", "flushdb"], check=True, stdout=subprocess.DEVNULL)
    worker = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "celery"), "-A", "config_hub", "worker", "--pool=threads", f"--concurrency={CONCURRENCY}",
         "--loglevel=WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=REPO, env={**os.environ, **ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    setups = {
        f"global change, {len(tenants)} tenants × {PER_TENANT}": (None, "global.key"),
        f"one tenant, {N:,} subscriptions": (solo, "solo.key"),
    }
    lines = []
    try:
        for label, (tenant, key) in setups.items():
            _round(receivers, lambda tenant=tenant, key=key: config_create(tenant=tenant, key=key, value=0, actor="bench"),
                   worker.pid, timeout=120)  # warm-up (the worker starting), not timed
            entry_id = ConfigEntry.objects.get(tenant=tenant, key=key).pk
            runs = [_round(receivers, lambda n=n, pk=entry_id: config_update(entry=ConfigEntry.objects.get(pk=pk), value=n,
                                                                             actor="bench"), worker.pid)
                    for n in range(1, ROUNDS + 1)]
            received = statistics.median(r[0] for r in runs)
            recorded = statistics.median(r[1] for r in runs)
            lines.append(
                f"fan-out, {label}: every receiver has the change in {received:.2f} s, every delivery recorded in "
                f"{recorded:.2f} s (medians of {ROUNDS}; rounds {', '.join(f'{r[0]:.2f}' for r in runs)}; "
                f"{statistics.median(r[2] for r in runs):.0f} connections; goal < {GOAL:.0f} s: "
                f"{'met' if recorded < GOAL else 'NOT met'}); CPU of the worker and its database backends: "
                f"{statistics.median(r[3] for r in runs):.2f} s")
            print(lines[-1], flush=True)
    finally:
        worker.terminate()
        worker.wait(30)
    print(f"(worker: threads pool, concurrency {CONCURRENCY}; {N:,} receivers on one port, keep-alive)")


if __name__ == "__main__":
    main()
