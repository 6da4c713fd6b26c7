"""The hub's signing secrets: each purpose has its own, none falls back to another.

``SECRET_KEY`` (Django: sessions, CSRF, password reset), ``JWT_SIGNING_KEY``
(operators' JWTs) and ``SERVICE_JWT_SECRET`` (the shared secret of service tokens, for one
tenant) must be different secrets: a holder of one must not be able to sign for
another. In production each must be set and all must differ (else the hub refuses
to start); in development an unset one is derived from ``SECRET_KEY`` with an HMAC
per purpose, so the bytes still differ. The settings and the system check
(``config_hub/checks.py``, shown by ``manage.py check --deploy``) share these rules.
"""
from __future__ import annotations

import hashlib
import hmac
from itertools import combinations

SIGNING_SECRETS = ("SECRET_KEY", "JWT_SIGNING_KEY", "SERVICE_JWT_SECRET")
MISSING = "config_hub.E001"
SHARED = "config_hub.E002"


def derive(secret_key: str, purpose: str) -> str:
    """A development key for one purpose: HMAC-SHA256 of SECRET_KEY with a label."""
    return hmac.new(secret_key.encode(), f"config-hub/{purpose}".encode(), hashlib.sha256).hexdigest()


def problems(values: dict[str, str | None], *, derived: list[str] | tuple[str, ...] = (),
             optional: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(check id, message) for each secret that is missing (or was derived because it
    was), unless it is ``optional``, and for each pair of secrets that are equal."""
    found = []
    for name in SIGNING_SECRETS[1:]:
        if name in optional and not values.get(name):
            continue
        if name in derived or not values.get(name):
            found.append((MISSING, f"{name} is not set: in production every signing secret is set on its own "
                                   f"(it is never taken from SECRET_KEY)"))
    for a, b in combinations([n for n in SIGNING_SECRETS if values.get(n) and n not in derived], 2):
        if hmac.compare_digest(str(values[a]).encode(), str(values[b]).encode()):
            found.append((SHARED, f"{a} and {b} are the same secret: whoever holds one could sign for the other; "
                                  f"set a different random value for each"))
    return found
