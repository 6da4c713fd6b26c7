"""Push invalidation of per-process caches over Redis pub/sub.

The hot reads (an API key's principal, a config key's generation tokens, a
tenant's flag generation) would each cost a Redis round trip per request. With
push invalidation a process keeps them in memory (``core.cache.LocalCache`` with
``push=True``) and every write publishes, after commit, which names changed; a
listener thread in each process drops them. This module is the transport: the
listener, whether it is connected, the message counter, and publishing. The
storage and its rules are ``core.cache``.

Safety rules:
- The publishing process drops its own entries synchronously, so a write is seen
  by the next request of the same process without waiting for the message.
- Local values are trusted only while the listener is connected. If the
  subscription drops (Redis restarted, network), every push cache is emptied
  and readers go back to Redis until the listener is subscribed again.
- A value read from Redis is stored locally only if no invalidation message
  arrived while it was being read (a per-process message counter, counted before
  the drop), so a message racing a read can never leave a stale value behind.
- A name is routed by prefix: the push cache whose ``name`` it starts with drops
  it; ``"prefix*"`` drops every name starting with the prefix.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django_redis import get_redis_connection

logger = logging.getLogger(__name__)

CHANNEL = "confighub:invalidate"

_lock = threading.Lock()
# started: the listener thread runs; connected: it is subscribed (local values may
# be trusted); messages: how many drops this process has seen (the race rule);
# epoch: bumped when the Redis settings change, so the listener subscribes again.
# enabled: whether push invalidation is on (REDIS_URL and LOCAL_INVALIDATION; None:
# not read yet): read on every cached request, so kept here, not read from settings.
state = {"connected": False, "started": False, "messages": 0, "epoch": 0, "enabled": None}


class Subscriber(Protocol):
    """What the listener drops names from (``core.cache.LocalCache(push=True)``)."""

    name: str

    def delete(self, key: str) -> None: ...

    def delete_prefix(self, prefix: str) -> None: ...

    def clear(self) -> None: ...


_subscribers: list[Subscriber] = []


def subscribe(cache: Subscriber) -> None:
    """Route the names starting with ``cache.name`` to ``cache``."""
    _subscribers.append(cache)


def connected() -> bool:
    """Whether local values may be trusted now (the listener is subscribed)."""
    return state["connected"]


def enabled() -> bool:
    value = state["enabled"]
    if value is None:
        value = state["enabled"] = bool(settings.REDIS_URL) and bool(settings.LOCAL_INVALIDATION)
    return value


def ensure_listener() -> None:
    if state["started"]:
        return
    with _lock:
        if state["started"]:
            return
        state["started"] = True
    thread = threading.Thread(target=_listen, name="confighub-invalidation", daemon=True)
    thread.start()


def _listen() -> None:
    while True:
        pubsub = None
        try:
            epoch = state["epoch"]
            pubsub = get_redis_connection("default").pubsub(ignore_subscribe_messages=False)
            pubsub.subscribe(CHANNEL)
            while True:
                message = pubsub.get_message(timeout=1.0)
                if state["epoch"] != epoch:
                    raise ConnectionError("the cache settings changed: subscribe again")
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    _clear()
                    state["connected"] = True
                    continue
                if message["type"] == "message":
                    data = message["data"]
                    _drop(data.decode() if isinstance(data, bytes) else str(data))
        except Exception:  # noqa: BLE001 - any failure: stop trusting local values
            state["connected"] = False
            _clear()
            logger.info("invalidation listener disconnected; reads go to Redis until it is back")
            time.sleep(1.0)
        finally:
            if pubsub is not None:
                try:
                    pubsub.close()
                except Exception:  # noqa: BLE001
                    pass


def _count() -> None:
    with _lock:
        state["messages"] += 1


def _clear() -> None:
    _count()
    for cache in _subscribers:
        cache.clear()


def _drop(name: str) -> None:
    """Drop one name, or every name starting with a prefix given as ``"prefix*"``,
    from the push caches it belongs to. Counted first: a reader that loaded before
    this drop and stores after it sees the count changed and keeps nothing."""
    _count()
    if name.endswith("*"):
        prefix = name[:-1]
        for cache in _subscribers:
            if prefix.startswith(cache.name):
                cache.delete_prefix(prefix)
            elif cache.name.startswith(prefix):
                cache.clear()
    else:
        for cache in _subscribers:
            if name.startswith(cache.name):
                cache.delete(name)


def invalidate(*names: str) -> None:
    """Drop ``names`` here now and in every other process (call after commit)."""
    for name in names:
        _drop(name)
    if not enabled():
        return
    try:
        client = get_redis_connection("default")
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.publish(CHANNEL, name)
        pipe.execute()
    except Exception:  # noqa: BLE001 - Redis down: listeners are disconnected and trust nothing
        logger.info("invalidation publish failed for %d name(s)", len(names))


def reset() -> None:
    """Forget every pushed value of this process (tests)."""
    _clear()


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **_: Any) -> None:
    # Another Redis (tests switch to one of their own): trust nothing local and
    # let the listener subscribe on the new server.
    if setting in ("REDIS_URL", "LOCAL_INVALIDATION"):
        state["enabled"] = None
    if setting in ("CACHES", "REDIS_URL"):
        state["connected"] = False
        state["epoch"] += 1
        _clear()


