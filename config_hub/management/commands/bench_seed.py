"""``manage.py bench_seed OUT.json``: the benchmark's realistic data set.

50 tenants; 200 config keys per tenant across scopes (20 secret, 50 for one
service); 100 flags per tenant with constraints and variants; 1,000 registry
instances. Bulk inserts (the services would take minutes) of valid rows. Writes
the keys, ids and ETags the load generator needs to OUT.json.
"""
from __future__ import annotations

import json
import random

import jwt
from django.core.management.base import BaseCommand
from django.utils import timezone

from flags.models import Flag, FlagEnvironment
from registry.models import Instance, Service
from registry.tokens import service_token_secret_create
from tenants.models import ConfigEntry, Environment, Tenant
from tenants.services.api_keys import api_key_create


class Command(BaseCommand):
    help = "Seed the benchmark data set."

    def add_arguments(self, parser):
        parser.add_argument("out")
        parser.add_argument("--tenants", type=int, default=50)

    def handle(self, *args, out, tenants, **options):
        rnd = random.Random(7)
        envs = list(Environment.objects.filter(slug__in=["development", "staging", "production"]))
        prod = next(e for e in envs if e.slug == "production")
        tenant_rows = Tenant.objects.bulk_create([Tenant(slug=f"t{i}", name=f"Tenant {i}") for i in range(tenants)])
        entries = []
        for g in range(40):  # global keys, some per environment
            entries.append(ConfigEntry(tenant=None, environment=envs[g % 3] if g % 2 else None, key=f"global.key{g}", value={"n": g}))
        for t in tenant_rows:
            for k in range(200):
                scope = k % 4
                env = prod if scope in (0, 1) else None
                svc = "svc-1" if k < 50 else ("" if scope in (1, 3) else f"svc-{k % 5 + 2}")
                secret = k % 10 == 9
                e = ConfigEntry(tenant=t, environment=env, service_name=svc, key=f"app.key{k}", is_secret=secret)
                if secret:
                    e.secret_value = f"secret-{t.slug}-{k}"
                else:
                    e.value = {"value": k, "tenant": t.slug, "flags": [1, 2, 3]}
                entries.append(e)
        ConfigEntry.objects.bulk_create(entries, batch_size=2000)
        flags, states = [], []
        for t in tenant_rows:
            for f in range(100):
                flags.append(Flag(tenant=t, name=f"flag{f}", default_environment=prod,
                                  variants=[{"name": v, "weight": 50, "payload": {"type": "string", "value": v}} for v in ("a", "b")] if f % 4 == 0 else []))
        Flag.objects.bulk_create(flags, batch_size=2000)
        for flag in Flag.objects.filter(tenant__in=tenant_rows):
            n = int(flag.name[4:])
            strategies = [{"name": "flexibleRollout", "parameters": {"rollout": str(rnd.randint(5, 95)), "stickiness": "default", "groupId": flag.name},
                           "constraints": [{"contextName": "region", "operator": "IN", "values": ["eu", "us"]}] if n % 3 == 0 else []}]
            states.append(FlagEnvironment(flag=flag, environment=prod, enabled=True, strategies=strategies))
        FlagEnvironment.objects.bulk_create(states, batch_size=2000)
        service_rows = Service.objects.bulk_create([Service(tenant=t, name=f"svc-{s}") for t in tenant_rows[:10] for s in range(5)])
        now = timezone.now()
        Instance.objects.bulk_create([
            Instance(service=service_rows[i % len(service_rows)], url=f"http://10.1.{i // 250}.{i % 250}:8080", last_heartbeat=now,
                     metadata={"version": "1.0", "region": "eu"}) for i in range(1000)])
        t0 = tenant_rows[0]
        _, key = api_key_create(name="bench", tenant=t0, scopes=["configs:read", "flags:read", "registry:read", "registry:write"],
                                         environment=prod, actor="system:bench")
        # The stream benchmark's key (bench/listeners): its listeners and its writes.
        _, stream_key = api_key_create(name="bench-stream", tenant=t0, scopes=["configs:read", "configs:write", "events:read"],
                                       actor="system:bench")
        # A platform key (bound to no tenant): the fleet's shared readers name the tenant with X-Tenant-ID.
        _, platform_key = api_key_create(name="bench-platform", tenant=None, scopes=["configs:read", "flags:read"],
                                         environment=prod, actor="system:bench")
        instance = Instance.objects.filter(service__tenant=t0, service__name="svc-1").order_by("id").first()

        _, service_secret = service_token_secret_create(tenant=t0, name="bench", actor="system:bench")
        token = jwt.encode({"service_id": instance.pk}, service_secret, algorithm="HS256")
        with open(out, "w") as handle:
            json.dump({"tenant": t0.slug, "api_key": key, "stream_key": stream_key, "platform_key": platform_key, "service_token": token, "instance_id": instance.pk,
                       "config_key": "app.key3", "tenant_key": "app.key51", "bundle_service": "svc-1"}, handle)
        self.stdout.write(f"seeded {len(tenant_rows)} tenants, {len(entries)} config entries, {len(flags)} flags, 1000 instances")
