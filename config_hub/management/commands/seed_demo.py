"""``manage.py seed_demo``: a demo tenant with schemas, configs (one secret), an admin
user, demo API keys and a service-token secret. Idempotent: running it again keeps
what exists (keys and secrets are shown only when created)."""
from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from flags.models import Flag
from flags.services.flags import flag_create
from registry.models import ServiceTokenSecret
from registry.tokens import service_token_secret_create
from tenants.models import ApiKey, ConfigEntry, ConfigSchema, Environment, Tenant
from tenants.services.api_keys import api_key_create
from tenants.services.configs import config_create
from tenants.services.schemas import schema_set
from tenants.services.tenants import tenant_create

ACTOR = "system:seed_demo"


class Command(BaseCommand):
    help = "Create demo data and an admin login (printed)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", default=None, help="default: a new random password, printed")

    def handle(self, *args, username, password, **options):
        tenant = Tenant.objects.filter(slug="tenant123").first() or tenant_create(
            slug="tenant123", name="Demo tenant", actor=ACTOR
        )
        prod = Environment.objects.get(slug="production")
        dev = Environment.objects.get(slug="development")
        if not ConfigSchema.objects.filter(key="reporting-service.export_settings").exists():
            schema_set(
                key="reporting-service.export_settings",
                schema={
                    "type": "object",
                    "properties": {
                        "format": {"type": "string", "enum": ["csv", "pdf", "excel"]},
                        "include_headers": {"type": "boolean"},
                        "max_rows": {"type": "integer", "minimum": 100, "maximum": 10000},
                    },
                    "required": ["format"],
                },
                metadata={"description": "Report export settings", "category": "reporting"},
                default_value={"format": "csv", "include_headers": True, "max_rows": 1000},
                actor=ACTOR,
            )
        if not ConfigSchema.objects.filter(key="email_notifications").exists():
            schema_set(
                key="email_notifications",
                schema={
                    "type": "object",
                    "properties": {"enabled": {"type": "boolean"}, "frequency": {"enum": ["hourly", "daily", "weekly"]}},
                    "required": ["enabled"],
                },
                actor=ACTOR,
            )
        demo = [
            (tenant, None, "", "email_notifications", {"enabled": True, "frequency": "daily"}, False),
            (None, None, "", "retry.max_attempts", 3, False),
            (None, prod, "user-service", "database.url", "postgresql://db.internal:5432/users", False),
            (tenant, dev, "user-service", "database.url", "postgresql://localhost:5432/users_dev", False),
            (tenant, prod, "user-service", "external.api_key", "sk_live_demo_secret_value", True),
            (None, None, "", "feature_flags", {"new_ui_enabled": False}, False),
            (tenant, None, "", "feature_flags", {"new_ui_enabled": True}, False),
        ]
        for t, env, svc, key, value, secret in demo:
            if not ConfigEntry.objects.filter(tenant=t, environment=env, service_name=svc, key=key).exists():
                config_create(
                    tenant=t, environment=env, service_name=svc, key=key, value=value, is_secret=secret, actor=ACTOR,
                    description="demo data",
                )
        User = get_user_model()  # noqa: N806 (the model class, named as Django names it)
        user = User.objects.filter(username=username).first()
        password = password or secrets.token_urlsafe(12)
        if user is None:
            User.objects.create_superuser(username=username, email=f"{username}@example.com", password=password)
        else:
            user.set_password(password)
            user.save()
        key_lines = []
        if not ApiKey.objects.filter(name="demo-tenant123").exists():
            _, raw = api_key_create(
                name="demo-tenant123", tenant=tenant, actor=ACTOR,
                scopes=["configs:read", "configs:write", "secrets:read", "flags:read", "flags:write",
                        "registry:read", "registry:write", "events:read"],
            )
            key_lines.append(f"demo API key (tenant123): {raw}")
        if not ApiKey.objects.filter(name="demo-platform").exists():
            _, raw = api_key_create(name="demo-platform", tenant=None, actor=ACTOR, scopes=["admin"])
            key_lines.append(f"platform API key (all tenants, admin scope): {raw}")
        if not ServiceTokenSecret.objects.filter(tenant=tenant, name="demo").exists():
            # Services that call /heartbeat and /services/{name} with a signed token
            # (HS256, claim service_id) sign it with this; the kid header may name it.
            row, raw = service_token_secret_create(tenant=tenant, name="demo", actor=ACTOR)
            key_lines.append(f"service-token secret (tenant123, kid {row.kid}): {raw}")
        if not key_lines:
            key_lines.append("demo API keys: created on the first run and shown only then; make another with\n"
                             "  .venv/bin/python manage.py create_api_key --name me --tenant tenant123 --scopes configs:read,flags:read")
        self._demo_flag(tenant, prod)
        self.stdout.write(
            "demo tenant: tenant123 (environments development, staging, production; flag new_payment_flow at 50% in production)\n"
            f"admin login: {username} / {password}\n" + "\n".join(key_lines) + "\n"
        )

    def _demo_flag(self, tenant, prod) -> None:
        if not Flag.objects.filter(tenant=tenant, name="new_payment_flow").exists():
            flag_create(tenant=tenant, name="new_payment_flow", environment=prod, is_enabled=True, rollout_percentage=50,
                        description="demo: a gradual rollout at 50%", actor=ACTOR)
