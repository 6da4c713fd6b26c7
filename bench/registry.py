"""Registry figures on PostgreSQL: one sweep over 100,000 instances, and heartbeat throughput.

Run: .venv/bin/python bench/registry.py   (its own database, config_hub_bench_sweep; part of `make bench`)
The sweep: 100,000 instances of 100 services bulk-inserted, half of them silent;
the median of 5 sweeps, each from the same state (the silent half live again,
the table vacuumed), every sweep marking 50,000 instances unhealthy and
announcing it through the outbox in its transaction.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DB = "config_hub_bench_sweep"
N = int(os.environ.get("BENCH_INSTANCES", "100000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))

os.environ.update({"DJANGO_SETTINGS_MODULE": "config_hub.settings.base", "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB}",
                   "REDIS_URL": "redis://127.0.0.1:6379/12", "LOG_LEVEL": "WARNING", "REGISTRY_HEARTBEAT_TTL": "90",
                   "REGISTRY_MAX_EVICT_RATIO": "1.0"})


def main() -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"DROP DATABASE IF EXISTS {DB}"], check=True)
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {DB}"], check=True)
    import django

    django.setup()
    from datetime import timedelta

    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from registry.heartbeats import heartbeat_flush, instance_heartbeat
    from registry.models import Instance, Service, SweepState
    from registry.sweep import instance_sweep
    from tenants.models import Tenant

    tenant = Tenant.objects.create(slug="bench", name="bench")
    services = Service.objects.bulk_create([Service(tenant=tenant, name=f"svc-{i}") for i in range(100)])
    now = timezone.now()
    started = time.perf_counter()
    Instance.objects.bulk_create(
        [Instance(service=services[i % 100], url=f"http://10.{i // 65536}.{i // 256 % 256}.{i % 256}:8080",
                  last_heartbeat=now - timedelta(seconds=120 if i % 2 else 0)) for i in range(N)],
        batch_size=5000,
    )
    print(f"inserted {N:,} instances in {time.perf_counter() - started:.1f}s (half of them silent)")
    SweepState.objects.update_or_create(pk=1, defaults={"last_sweep_at": now, "resumed_at": now - timedelta(hours=1)})

    def reset() -> None:
        """The same state before each sweep (not timed): every instance live, the
        odd half silent for two minutes, the table vacuumed (autovacuum's job)."""
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {Instance._meta.db_table} SET status = 'healthy', last_heartbeat = CASE WHEN id % 2 = 1 "
                           f"THEN now() - interval '120 seconds' ELSE now() END")
            cursor.execute(f"VACUUM ANALYZE {Instance._meta.db_table}")
        SweepState.objects.filter(pk=1).update(last_sweep_at=timezone.now())

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]

    def cpu() -> float:
        """CPU seconds (user + system) of this process and of its PostgreSQL backend:
        what a sweep costs, which other load on the machine does not move."""
        with open(f"/proc/{backend}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return time.process_time() + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    times, cpus, result = [], [], {}
    for _ in range(ROUNDS):
        reset()
        started, cpu_started = time.perf_counter(), cpu()
        result = instance_sweep()
        times.append(time.perf_counter() - started)
        cpus.append(cpu() - cpu_started)
    sweep = statistics.median(times)
    print(f"one sweep over {N:,} instances: {sweep * 1000:.0f} ms (median of {ROUNDS}: "
          f"{', '.join(f'{t * 1000:.0f}' for t in times)} ms), marked {result['marked']:,} unhealthy "
          f"(goal: < 500 ms: {'met' if sweep < 0.5 else 'NOT met'}); CPU of the sweep and its database backend: "
          f"{statistics.median(cpus) * 1000:.0f} ms (median; {', '.join(f'{c * 1000:.0f}' for c in cpus)})")
    if os.environ.get("BENCH_PROFILE"):  # where one more sweep's time goes: each query, and the rest
        reset()
        spent: list[tuple[float, str]] = []

        def timed(execute, sql, params, many, context):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                spent.append((time.perf_counter() - started, sql[:90]))

        started = time.perf_counter()
        with connection.execute_wrapper(timed):
            instance_sweep()
        total = time.perf_counter() - started
        for seconds, sql in spent:
            print(f"  {seconds * 1000:7.1f} ms  {sql}")
        print(f"  {(total - sum(s for s, _ in spent)) * 1000:7.1f} ms  outside the database; {total * 1000:.0f} ms in all")
    reset()
    ids = list(Instance.objects.filter(status="healthy").values_list("pk", flat=True)[:2000])
    started = time.perf_counter()
    for instance_id in ids:  # the first beat of each: its state is loaded once
        instance_heartbeat(instance_id=instance_id, status="healthy", actor="bench")
    first = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(10000):  # steady state: every instance beating again
        instance_heartbeat(instance_id=ids[i % len(ids)], status="healthy", actor="bench")
    beat = time.perf_counter() - started
    print(f"heartbeats through the service, one process: first beat of {len(ids):,} instances {first / len(ids) * 1000:.2f} ms each; "
          f"then {10000 / beat:,.0f} per second ({beat / 10000 * 1000:.2f} ms each)")
    started = time.perf_counter()
    flushed = heartbeat_flush()
    print(f"flushing the buffered beats to PostgreSQL: {(time.perf_counter() - started) * 1000:.0f} ms ({flushed})")


if __name__ == "__main__":
    main()
