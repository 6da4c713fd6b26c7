"""``manage.py export_tenant SLUG [--format yaml|json] [--include-secrets encrypted|plain]``."""
from django.core.management.base import BaseCommand, CommandError

from config_hub.transfer import dumps, tenant_export
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Export a tenant's configs and flags (secrets only on request)."

    def add_arguments(self, parser):
        parser.add_argument("tenant")
        parser.add_argument("--format", choices=["json", "yaml"], default="yaml")
        parser.add_argument("--include-secrets", choices=["none", "encrypted", "plain"], default="none")

    def handle(self, *args, tenant, format, include_secrets, **options):
        obj = Tenant.objects.filter(slug=tenant).first()
        if obj is None:
            raise CommandError(f"tenant '{tenant}' does not exist")
        self.stdout.write(dumps(tenant_export(tenant=obj, include_secrets=include_secrets), format))
