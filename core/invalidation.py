"""Push invalidation of per-process caches over Redis pub/sub.

The hot reads (an API key's principal, a config key's generation tokens, a
tenant's flag generation) would each cost a Redis round trip per request. With
push invalidation a process keeps them in memory and every write publishes, after
commit, which ones changed; a listener thread in each process drops them.

Safety rules:
- The publishing process drops its own entries synchronously, so a write is seen
  by the next request of the same process without waiting for the message.
- Local values are trusted only while the listener is connected. If the
  subscription drops (Redis restarted, network), everything local is cleared
  and readers go back to Redis until the listener is subscribed again.
- A value read from Redis is stored locally only if no invalidation message
  arrived while it was being read (a per-process message counter), so a message
  racing a read can never leave a stale value behind.
- Bounded: at most MAX_ITEMS names per process, the oldest dropped first, and a
  caller keeps out what should not stay (an unknown API key: ``keep``).
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

logger = logging.getLogger(__name__)

CHANNEL = "confighub:invalidate"

_lock = threading.Lock()
# Far above what a fleet's keys, environments and tenants need; a name past it
# pushes out the oldest.
MAX_ITEMS = 50_000
_values: OrderedDict[str, Any] = OrderedDict()
_state = {"connected": False, "started": False, "messages": 0, "epoch": 0}


def enabled() -> bool:
    return bool(settings.REDIS_URL) and settings.LOCAL_INVALIDATION


def _ensure_listener() -> None:
    if _state["started"]:
        return
    with _lock:
        if _state["started"]:
            return
        _state["started"] = True
    thread = threading.Thread(target=_listen, name="confighub-invalidation", daemon=True)
    thread.start()


def _listen() -> None:
    from django_redis import get_redis_connection

    while True:
        pubsub = None
        try:
            epoch = _state["epoch"]
            pubsub = get_redis_connection("default").pubsub(ignore_subscribe_messages=False)
            pubsub.subscribe(CHANNEL)
            while True:
                message = pubsub.get_message(timeout=1.0)
                if _state["epoch"] != epoch:
                    raise ConnectionError("the cache settings changed: subscribe again")
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    _clear()
                    _state["connected"] = True
                    continue
                if message["type"] == "message":
                    data = message["data"]
                    _drop(data.decode() if isinstance(data, bytes) else str(data))
        except Exception:  # noqa: BLE001 - any failure: stop trusting local values
            _state["connected"] = False
            _clear()
            logger.info("invalidation listener disconnected; reads go to Redis until it is back")
            time.sleep(1.0)
        finally:
            if pubsub is not None:
                try:
                    pubsub.close()
                except Exception:  # noqa: BLE001
                    pass


def _clear() -> None:
    with _lock:
        _values.clear()
        _state["messages"] += 1


def _drop(name: str) -> None:
    """Drop one name, or every name starting with a prefix given as ``"prefix*"``."""
    with _lock:
        if name.endswith("*"):
            prefix = name[:-1]
            for stale in [n for n in _values if n.startswith(prefix)]:
                del _values[stale]
        else:
            _values.pop(name, None)
        _state["messages"] += 1


def cached(name: str, load: Callable[[], Any], ttl: float | None = None,
           keep: Callable[[Any], bool] | None = None) -> Any:
    """The value of ``name``: from this process while the listener is connected,
    else (and on a miss) from ``load()``. ``ttl`` (default LOCAL_INVALIDATION_TTL)
    bounds how long this process keeps it even without a message; a loaded value
    for which ``keep`` answers False is returned but not kept."""
    if not enabled():
        return load()
    _ensure_listener()
    if _state["connected"]:
        hit = _values.get(name)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
    before = _state["messages"]
    value = load()
    if _state["connected"] and value is not None and (keep is None or keep(value)):
        with _lock:
            if _state["messages"] == before:
                _values.pop(name, None)
                while len(_values) >= MAX_ITEMS:
                    _values.popitem(last=False)
                # A bound on staleness even if a message were ever lost.
                _values[name] = (time.monotonic() + (settings.LOCAL_INVALIDATION_TTL if ttl is None else ttl), value)
    return value


def invalidate(*names: str) -> None:
    """Drop ``names`` here now and in every other process (call after commit)."""
    for name in names:
        _drop(name)
    if not enabled():
        return
    try:
        from django_redis import get_redis_connection

        client = get_redis_connection("default")
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.publish(CHANNEL, name)
        pipe.execute()
    except Exception:  # noqa: BLE001 - Redis down: listeners are disconnected and trust nothing
        logger.info("invalidation publish failed for %d name(s)", len(names))


def reset() -> None:
    """Forget every local value (tests)."""
    _clear()


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **_: Any) -> None:
    # Another Redis (tests switch to one of their own): trust nothing local and
    # let the listener subscribe on the new server.
    if setting in ("CACHES", "REDIS_URL"):
        _state["connected"] = False
        _state["epoch"] += 1
        _clear()


