"""``manage.py create_api_key --name N (--tenant T | --all-tenants) --scopes a,b``.

Prints the key and nothing else on stdout, so ``KEY=$(manage.py create_api_key ...)`` works.
"""
from django.core.management.base import BaseCommand, CommandError

from core.errors import DomainError
from tenants.models import Environment, Tenant
from tenants.services.api_keys import api_key_create


class Command(BaseCommand):
    help = "Create a service API key and print it (shown once)."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--tenant", help="tenant slug the key is bound to")
        group.add_argument("--all-tenants", action="store_true", help="a platform key for every tenant")
        parser.add_argument("--scopes", required=True, help="comma separated, e.g. configs:read,flags:read")
        parser.add_argument("--environment", help="default environment (OFREP)")

    def handle(self, *args, name, tenant, all_tenants, scopes, environment=None, **options):
        tenant_obj = None
        if tenant:
            tenant_obj = Tenant.objects.filter(slug=tenant).first()
            if tenant_obj is None:
                raise CommandError(f"tenant '{tenant}' does not exist")
        env = None
        if environment:
            env = Environment.objects.filter(slug=environment).first()
            if env is None:
                raise CommandError(f"environment '{environment}' does not exist")
        try:
            _, raw = api_key_create(
                name=name, tenant=tenant_obj, environment=env,
                scopes=[s.strip() for s in scopes.split(",") if s.strip()], actor="system:cli",
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(raw)
