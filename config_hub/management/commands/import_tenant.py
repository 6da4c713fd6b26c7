"""``manage.py import_tenant SLUG FILE``: all or nothing, validated first."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config_hub.transfer import loads, tenant_import
from core.errors import DomainError
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Import a tenant's configs and flags from a JSON or YAML export."

    def add_arguments(self, parser):
        parser.add_argument("tenant")
        parser.add_argument("file")

    def handle(self, *args, tenant, file, **options):
        obj = Tenant.objects.filter(slug=tenant).first()
        if obj is None:
            raise CommandError(f"tenant '{tenant}' does not exist")
        try:
            summary = tenant_import(tenant=obj, document=loads(Path(file).read_text()), actor="system:cli",
                                    can_read_secrets=True)
        except DomainError as exc:
            problems = (exc.details or {}).get("problems", []) if isinstance(exc.details, dict) else []
            raise CommandError("\n".join([exc.message, *problems])) from exc
        self.stdout.write(f"imported {summary['configs']} config(s) and {summary['flags']} flag(s) into {tenant}")
