"""Small per-process caches in front of Redis for the hot read paths.

Only values whose freshness is checked some other way live here: resolved
configs are keyed by their generation tokens (read from Redis on every request),
so a write anywhere invalidates them at once; tenants live a few seconds.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from core import invalidation

_registry: list[LocalCache] = []
_clear_hooks: list[Callable[[], None]] = []


class LocalCache:
    def __init__(self, *, ttl: float, max_items: int = 10_000):
        self.ttl = ttl
        self.max_items = max_items
        self._data: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        _registry.append(self)

    def get(self, key: Any) -> Any:
        hit = self._data.get(key)
        if hit is None:
            return None
        expires, value = hit
        if expires < time.monotonic():
            self._data.pop(key, None)
            return None
        return value

    def set(self, key: Any, value: Any, ttl: float | None = None) -> None:
        with self._lock:
            if len(self._data) >= self.max_items:
                self._data.clear()  # crude but bounded: a cold start, never a leak
            self._data[key] = (time.monotonic() + (self.ttl if ttl is None else ttl), value)

    def delete(self, key: Any) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


def on_clear_all(clear: Callable[[], None]) -> None:
    """Register a cache kept outside LocalCache (an app's own) for ``clear_all``."""
    _clear_hooks.append(clear)


def clear_all() -> None:
    """Empty every local cache of this process (tests; a tenant deactivated here)."""
    for c in _registry:
        c.clear()
    for clear in _clear_hooks:
        clear()
    invalidation.reset()
