"""Rotation of the encryption keys (``FERNET_KEYS``) over every encrypted column."""
from __future__ import annotations

from django.apps import apps
from django.db import transaction

from core.fields import EncryptedJSONField

from .. import cache as cfg_cache
from ..models import ConfigEntry


def _encrypted_columns() -> list[tuple[type, list[str]]]:
    """Every (model, encrypted field names) of the project: config secrets, webhook secrets, ..."""


    out = []
    for model in apps.get_models():
        names = [f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedJSONField)]
        if names:
            out.append((model, names))
    return out


def fernet_rotate(*, batch_size: int = 500) -> int:
    """Re-encrypt every encrypted value with the first key of FERNET_KEYS. Returns the count.

    Every model's encrypted columns are rotated (config secrets and webhook
    signing secrets alike), so the old keys can be removed afterwards. Loading
    decrypts with any key; saving encrypts with the first. Values do not change,
    so no version bump and no event. Cached resolutions hold the secret encrypted
    with the key of the time: their generations are bumped, or they would become
    unreadable once the old key is removed.
    """
    count = 0
    for model, names in _encrypted_columns():
        ids = list(model._default_manager.exclude(**{f"{names[0]}__isnull": True}).values_list("pk", flat=True)
                   if len(names) == 1 else model._default_manager.values_list("pk", flat=True))
        for start in range(0, len(ids), batch_size):
            with transaction.atomic():
                rows = model._default_manager.select_for_update().filter(pk__in=ids[start : start + batch_size])
                touched: dict[int | None, set[str]] = {}
                for row in rows.only("pk", *names, *(["tenant_id", "key"] if model is ConfigEntry else [])):
                    model._default_manager.filter(pk=row.pk).update(**{n: getattr(row, n) for n in names})
                    count += 1
                    if model is ConfigEntry:
                        touched.setdefault(row.tenant_id, set()).add(row.key)
                for tenant_id, keys in touched.items():
                    cfg_cache.invalidate_keys(tenant_id, keys)
    return count
