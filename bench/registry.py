"""Registry figures on PostgreSQL: one sweep over 100,000 instances, and heartbeat throughput.

Run: .venv/bin/python bench/registry.py   (uses the database config_hub_bench_registry)
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DB = "config_hub_bench_registry"
N = int(os.environ.get("BENCH_INSTANCES", "100000"))

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
    started = time.perf_counter()
    result = instance_sweep()
    sweep = time.perf_counter() - started
    print(f"one sweep over {N:,} instances: {sweep * 1000:.0f} ms, marked {result['marked']:,} unhealthy (goal: < 1 s)")
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
