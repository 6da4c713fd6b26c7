"""Re-encrypt every secret with the first key of FERNET_KEYS.

Rotation: put the new key first in FERNET_KEYS (keep the old ones after it), run
this command, then remove the old keys.
"""
from django.core.management.base import BaseCommand, CommandError

from core.fields import SecretDecryptionError
from tenants.services.fernet import fernet_rotate


class Command(BaseCommand):
    help = "Re-encrypt all secrets with the first key of FERNET_KEYS."

    def handle(self, *args, **options):
        try:
            count = fernet_rotate()
        except SecretDecryptionError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"re-encrypted {count} secret(s) with the first key of FERNET_KEYS")
