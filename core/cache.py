"""The one per-process cache: keyed, bounded (LRU), optional TTL, registered, and
optionally push-invalidated over Redis pub/sub (``core.invalidation``).

Every value a process keeps between requests lives in a :class:`LocalCache`,
each app's cache an instance with its own parameters. The rules, the same for
every instance (docs/architecture.md, "Per-process caches"):

- Keyed and bounded: at most ``max_items`` keys; a new key past the bound pushes
  out the least recently used one. ``None`` is never stored (it means "missing").
- Optional TTL: a value is served for at most ``ttl`` seconds (``time.monotonic``);
  ``ttl=None`` keeps it until it is pushed out, dropped or cleared (for values
  whose freshness is checked some other way, e.g. keyed by a generation token).
- Registered: :func:`clear_all` empties every instance of the process (tests; the
  listener reconnecting empties the push-invalidated ones).
- Push-invalidated (``push=True``): ``name`` is the prefix of every key, and
  :func:`core.invalidation.invalidate` of a key (or of ``"prefix*"``) drops it in
  this process at once and in every other process through the listener. Such a
  cache is filled only through :meth:`LocalCache.get_or_load`, which applies the
  safety rules: values are served and kept only while the listener is connected,
  a value loaded while a message arrived is returned but not kept, and without
  Redis (or with ``LOCAL_INVALIDATION`` off) nothing is kept at all.

Thread safety: reads take no lock (one ``OrderedDict`` get and one
``move_to_end``, each atomic under the GIL; a key evicted in between is a miss);
every write, drop and scan holds the instance's lock.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from time import monotonic
from typing import Any

from django.conf import settings

from core import invalidation

_registry: list[LocalCache] = []
_state = invalidation.state


class LocalCache:
    """One per-process cache (see the module docstring for the rules)."""

    def __init__(self, name: str, *, max_items: int, ttl: float | None = None, push: bool = False):
        if any(c.name == name for c in _registry):
            raise ValueError(f"a LocalCache named {name!r} exists already")
        self.name = name
        self.max_items = max_items
        # A push cache without a TTL of its own keeps a value LOCAL_INVALIDATION_TTL
        # seconds at most: a bound on staleness even if a message were ever lost.
        self.ttl = ttl
        self.push = push
        # key -> (expiry on the monotonic clock, or None for no TTL; value)
        self._data: OrderedDict[Any, tuple[float | None, Any]] = OrderedDict()
        self._lock = threading.Lock()
        _registry.append(self)
        if push:
            invalidation.subscribe(self)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Any) -> bool:
        hit = self._data.get(key)
        return hit is not None and (hit[0] is None or hit[0] > monotonic())

    # --- reads -------------------------------------------------------------------

    def get(self, key: Any) -> Any:
        """The value of ``key``, or None (missing or expired; for a push cache also
        while the listener is not connected)."""
        hit = self._data.get(key)
        if hit is None or (self.push and not _state["connected"]):
            return None
        if hit[0] is not None and hit[0] <= monotonic():
            self.delete(key)
            return None
        try:
            self._data.move_to_end(key)
        except KeyError:  # evicted or dropped meanwhile: still a valid answer
            pass
        return hit[1]

    def get_or_load(self, key: Any, load: Callable[[], Any], *, ttl: float | None = None,
                    keep: Callable[[Any], bool] | None = None) -> Any:
        """The value of ``key`` from this process, else ``load()``, kept unless it is
        None or ``keep(value)`` answers False. ``ttl`` overrides the cache's for
        this value."""
        if self.push:
            if not invalidation.enabled():
                return load()
            if _state["connected"]:
                hit = self._data.get(key)
                if hit is not None and hit[0] > monotonic():
                    try:
                        self._data.move_to_end(key)
                    except KeyError:
                        pass
                    return hit[1]
            elif not _state["started"]:
                invalidation.ensure_listener()
            before = _state["messages"]
            value = load()
            if value is not None and (keep is None or keep(value)):
                with self._lock:
                    # Kept only if no message (nor a reconnection) came while loading;
                    # invalidation counts a message before its drop, which takes this lock.
                    if _state["connected"] and _state["messages"] == before:
                        self._store(key, value, ttl)
            return value
        hit = self.get(key)
        if hit is not None:
            return hit
        value = load()
        if value is not None and (keep is None or keep(value)):
            self.set(key, value, ttl)
        return value

    # --- writes ------------------------------------------------------------------

    def set(self, key: Any, value: Any, ttl: float | None = None) -> None:
        """Keep ``value`` under ``key`` (not for push caches: they fill through
        :meth:`get_or_load`, where the race with a message is checked)."""
        if self.push:
            raise TypeError(f"{self.name}: a push-invalidated cache is filled through get_or_load")
        if value is None:
            return
        with self._lock:
            self._store(key, value, ttl)

    def _store(self, key: Any, value: Any, ttl: float | None) -> None:
        # The lock is held.
        if ttl is None:
            ttl = self.ttl
            if ttl is None and self.push:
                ttl = settings.LOCAL_INVALIDATION_TTL
        data = self._data
        data.pop(key, None)
        while len(data) >= self.max_items:
            data.popitem(last=False)  # the least recently used
        data[key] = (None if ttl is None else monotonic() + ttl, value)

    def delete(self, key: Any) -> None:
        with self._lock:
            self._data.pop(key, None)

    def delete_prefix(self, prefix: str) -> None:
        """Drop every key (a string) starting with ``prefix``."""
        with self._lock:
            # list() copies the keys in one C call: a lock-free hit moving a key
            # meanwhile cannot break the scan.
            for stale in [k for k in list(self._data) if k.startswith(prefix)]:
                self._data.pop(stale, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


def caches() -> list[LocalCache]:
    """Every LocalCache of this process."""
    return list(_registry)


def clear_all() -> None:
    """Empty every local cache of this process (tests; a tenant deactivated here)."""
    invalidation.reset()
    for c in _registry:
        c.clear()
