"""The last-known-good copy of a bundle on disk.

Written after each successful fetch, atomically (a temp file in the same
directory, then ``os.replace``): a reader never sees half a file. The file holds
exactly what the hub returned to this key: a secret the key may not read
(no ``secrets:read``) is stored as the hub sent it, ``"value": null,
"masked": true``; a key that may read secrets gets their values, and so does
the file. Either way the file is created with mode 0600 (owner only).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def cache_path(cache_dir: str, *, url: str, api_key: str, tenant: str | None, service: str, environment: str | None) -> str:
    """``<tenant-or-key-hash>-<service>-<environment>.json``: the tenant when the
    client names one, else a hash of the hub's URL and the key (never the key)."""
    owner = tenant or hashlib.sha256(f"{url.rstrip('/')}\n{api_key}".encode()).hexdigest()[:16]
    name = "-".join(_UNSAFE.sub("_", part) for part in (owner, service, environment or "all"))
    return os.path.join(cache_dir, f"{name}.json")


def has_plain_secrets(rows: list[dict[str, Any]]) -> bool:
    return any(row.get("is_secret") and not row.get("masked") for row in rows)


def write(path: str, *, etag: str | None, rows: list[dict[str, Any]]) -> None:
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    document = {"etag": etag, "saved_at": time.time(), "plain_secrets": has_plain_secrets(rows), "configs": rows}
    fd, tmp = tempfile.mkstemp(prefix=".confighub-", suffix=".tmp", dir=directory)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(document, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read(path: str) -> tuple[str | None, list[dict[str, Any]]] | None:
    """``(etag, rows)`` of the copy, or None when there is none (or it is unreadable)."""
    try:
        with open(path, encoding="utf-8") as src:
            document = json.load(src)
        return document.get("etag"), list(document["configs"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
