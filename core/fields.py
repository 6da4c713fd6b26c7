"""An encrypted JSON model field on ``cryptography``'s MultiFernet.

``FERNET_KEYS`` is a list: the first key encrypts, every key decrypts, so keys
rotate by putting a new key first and running ``manage.py rotate_fernet_keys``.
A value that no key decrypts raises :class:`SecretDecryptionError`; the field
never hands back ciphertext as if it were the value.
"""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


class SecretDecryptionError(Exception):
    """A stored secret could not be decrypted with any key of FERNET_KEYS."""


@lru_cache(maxsize=4)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "FERNET_KEYS holds a key that is not a valid Fernet key "
            "(32 url-safe base64-encoded bytes)"
        ) from exc


def fernet() -> MultiFernet:
    keys = tuple(settings.FERNET_KEYS)
    if not keys:
        raise ImproperlyConfigured("FERNET_KEYS is empty")
    return _fernet_for(keys)


def encrypt_json(value: Any) -> str:
    return fernet().encrypt(json.dumps(value).encode()).decode()


def decrypt_json(token: str) -> Any:
    try:
        return json.loads(fernet().decrypt(token.encode()))
    except InvalidToken as exc:
        raise SecretDecryptionError(
            "a stored secret cannot be decrypted with any key of FERNET_KEYS "
            "(was a key removed before rotate_fernet_keys ran?)"
        ) from exc


class EncryptedJSONField(models.TextField):
    """Stores a JSON value as a Fernet token; Python sees the plain value.

    Decryption happens when a row is loaded. Code that does not need the value
    (lists, the history) should ``defer()`` the field or use ``values()`` on other
    columns: the hot read path caches the token and decrypts only for callers
    allowed to see it.
    """

    description = "JSON value encrypted with MultiFernet"

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        return decrypt_json(value)

    def get_prep_value(self, value):
        if value is None:
            return None
        return encrypt_json(value)

    def to_python(self, value):
        return value

    def value_to_string(self, obj) -> str:
        # Never serialise the plain value (dumpdata, history diffs).
        return "[encrypted]"
