"""``python -m tests.oidc_provider PORT CLIENT_JSON``: migrate the provider's SQLite,
create its users (from OP_USERS_FILE) and the hub's client, then serve on PORT.

CLIENT_JSON: {"client_id", "client_secret", "redirect_uri"}.
"""
from __future__ import annotations

import json
import os
import sys


def main() -> None:
    port, client = sys.argv[1], json.loads(sys.argv[2])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.oidc_provider.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from oauth2_provider.models import Application

    call_command("migrate", verbosity=0)
    users = json.loads(open(settings.OP_USERS_FILE).read())
    for username, record in users.items():
        user, _ = get_user_model().objects.get_or_create(username=username, defaults={"email": record.get("email", "")})
        user.set_password(record["password"])
        user.save()
    Application.objects.update_or_create(
        client_id=client["client_id"],
        defaults={
            "name": "config hub", "client_secret": client["client_secret"],
            "client_type": Application.CLIENT_CONFIDENTIAL,
            "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
            "redirect_uris": client["redirect_uri"], "algorithm": Application.RS256_ALGORITHM,
            "skip_authorization": True,
        },
    )
    call_command("runserver", f"127.0.0.1:{port}", use_reloader=False, use_threading=True, skip_checks=True)


if __name__ == "__main__":
    main()
