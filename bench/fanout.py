"""Fan-out: one config change to 1,000 subscribed receivers on localhost, with a real worker.

Run: .venv/bin/python bench/fanout.py   (database config_hub_bench_fanout, Redis db 11/10)
Prints the time from the commit of the change until every receiver has it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DB = "config_hub_bench_fanout"
N = int(os.environ.get("BENCH_RECEIVERS", "1000"))
CONCURRENCY = os.environ.get("BENCH_WORKER_CONCURRENCY", "16")
ENV = {"DJANGO_SETTINGS_MODULE": "config_hub.settings.base", "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB}",
       "REDIS_URL": "redis://127.0.0.1:6379/11", "CELERY_BROKER_URL": "redis://127.0.0.1:6379/10", "LOG_LEVEL": "WARNING"}
os.environ.update(ENV)

received: set[str] = set()
lock = threading.Lock()
done = threading.Event()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length") or 0))
        with lock:
            received.add(self.path)
            if len(received) >= N:
                done.set()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def main() -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"DROP DATABASE IF EXISTS {DB}"], check=True)
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {DB}"], check=True)
    subprocess.run(["redis-cli", "-n", "10", "flushdb"], check=True, stdout=subprocess.DEVNULL)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from events.services import webhook_create
    from tenants.models import Tenant
    from tenants.services.configs import config_create

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    tenant = Tenant.objects.create(slug="fanout", name="fanout")
    for i in range(N):
        webhook_create(tenant=tenant, url=f"http://127.0.0.1:{port}/receiver/{i}", resource_types=["config"], actor="bench")
    # The subscriptions' own "webhook.created" events are not what is measured:
    # mark them sent (they match no subscription filter anyway) and clear the queue.
    from django.utils import timezone

    from events.models import Event

    Event.objects.update(dispatched_at=timezone.now())
    subprocess.run(["redis-cli", "-n", "10", "flushdb"], check=True, stdout=subprocess.DEVNULL)
    worker = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "celery"), "-A", "config_hub", "worker", "--pool=threads", f"--concurrency={CONCURRENCY}",
         "--loglevel=WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=REPO, env={**os.environ, **ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(6)  # worker start-up
        started = time.perf_counter()
        config_create(tenant=tenant, key="fanout.key", value=1, actor="bench")
        ok = done.wait(120)
        elapsed = time.perf_counter() - started
    finally:
        worker.terminate()
        worker.wait(30)
        server.shutdown()
    status = "all delivered" if ok else f"only {len(received)} delivered"
    print(f"fan-out of one change to {N:,} receivers: {status} in {elapsed:.2f} s "
          f"(worker: threads pool, concurrency {CONCURRENCY}; goal: < 10 s)")


if __name__ == "__main__":
    main()
