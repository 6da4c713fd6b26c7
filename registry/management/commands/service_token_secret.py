"""``manage.py service_token_secret create --tenant T [--name N] | list [--tenant T] | revoke KID``.

``create`` prints the key id and the secret (shown once) on stdout, tab-separated,
so ``read KID SECRET < <(manage.py service_token_secret create --tenant acme)`` works.
A service signs its service token (``POST /heartbeat``, ``GET /services/{name}``) with the secret (optionally naming it with the
``kid`` header); rotate by creating a new one, moving the services, revoking the old.
"""
from django.core.management.base import BaseCommand, CommandError

from core.errors import DomainError
from registry import tokens
from registry.models import ServiceTokenSecret
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Create, list or revoke a tenant's service-token secrets."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="a new secret for a tenant (printed once: KID<TAB>SECRET)")
        create.add_argument("--tenant", required=True, help="tenant slug")
        create.add_argument("--name", default="", help="what it is for, e.g. the fleet or the date of the rotation")
        listing = sub.add_parser("list", help="key ids, names and states (never the secrets)")
        listing.add_argument("--tenant", help="tenant slug")
        revoke = sub.add_parser("revoke", help="refuse the tokens signed with this secret from now on")
        revoke.add_argument("kid")

    def handle(self, *args, action, **options):
        if action == "create":
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"tenant '{options['tenant']}' does not exist")
            try:
                row, raw = tokens.service_token_secret_create(tenant=tenant, name=options["name"], actor="system:cli")
            except DomainError as exc:
                raise CommandError(exc.message) from exc
            self.stdout.write(f"{row.kid}\t{raw}")
        elif action == "list":
            rows = ServiceTokenSecret.objects.select_related("tenant").defer("secret")
            if options.get("tenant"):
                rows = rows.filter(tenant__slug=options["tenant"])
            for row in rows:
                state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
                self.stdout.write(f"{row.kid}\t{row.tenant.slug}\t{state}\t{row.name}")
        else:
            row = ServiceTokenSecret.objects.select_related("tenant").defer("secret").filter(kid=options["kid"]).first()
            if row is None:
                raise CommandError(f"no service-token secret with key id '{options['kid']}'")
            tokens.service_token_secret_revoke(secret=row, actor="system:cli")
            self.stdout.write(f"revoked {row.kid} ({row.tenant.slug})")
