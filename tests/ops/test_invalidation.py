"""Per-process caches (core.cache.LocalCache): one set of rules for every instance,
and push-invalidated ones dropped when any process publishes an invalidation."""
from __future__ import annotations

import importlib

import pytest
from django_redis import get_redis_connection

from core import invalidation
from core.cache import LocalCache, caches, clear_all
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db

# Test-only instances (an instance is registered for the life of the process).
_probe = LocalCache("probe:", push=True, max_items=100)
_plain = LocalCache("tests.plain", ttl=10.0, max_items=3)
_plain_big = LocalCache("tests.plain-big", max_items=100)


def _wait(predicate, timeout=5.0) -> bool:
    return wait_until(predicate, timeout=timeout, step=0.05)


def _loader():
    loads = []

    def load():
        loads.append(1)
        return f"v{len(loads)}"

    return load, loads


def _connected() -> bool:
    _probe.get_or_load("probe:warm", lambda: 1)  # starts the listener
    return _wait(invalidation.connected)


def test_invalidation__message_from_another_process__drops_the_local_value():
    load, _ = _loader()

    _probe.get_or_load("probe:key", load)
    assert _wait(invalidation.connected)
    first = _probe.get_or_load("probe:key", load)
    again = _probe.get_or_load("probe:key", load)
    assert first == again  # served from this process, no second load

    # Another process (a raw Redis client here) announces a change.
    get_redis_connection("default").publish(invalidation.CHANNEL, "probe:key")

    assert _wait(lambda: _probe.get_or_load("probe:key", load) != first)


def test_invalidation__prefix_message_from_another_process__drops_every_name_under_it():
    assert _connected()
    load, loads = _loader()
    for name in ("probe:t1:a", "probe:t1:b", "probe:t2:a"):
        _probe.get_or_load(name, load)

    get_redis_connection("default").publish(invalidation.CHANNEL, "probe:t1:*")

    assert _wait(lambda: "probe:t1:a" not in _probe and "probe:t1:b" not in _probe)
    assert "probe:t2:a" in _probe
    assert len(loads) == 3


def test_invalidation__publishing_process__drops_its_own_value_at_once():
    assert _connected()
    load, loads = _loader()
    assert _probe.get_or_load("probe:mine", load) == "v1"

    invalidation.invalidate("probe:mine")

    assert _probe.get_or_load("probe:mine", load) == "v2"  # no waiting for the message
    assert len(loads) == 2


def test_push_cache__message_while_loading__value_returned_but_not_kept():
    assert _connected()
    loads = []

    def racing_load():
        loads.append(1)
        invalidation.invalidate("probe:other")  # any drop while this load runs
        return f"v{len(loads)}"

    assert _probe.get_or_load("probe:raced", racing_load) == "v1"
    assert "probe:raced" not in _probe
    assert _probe.get_or_load("probe:raced", racing_load) == "v2"


def test_push_cache__local_invalidation_off__loads_every_time_and_keeps_nothing(settings):
    assert _connected()
    settings.LOCAL_INVALIDATION = False
    load, _ = _loader()

    answers = [_probe.get_or_load("probe:off", load) for _ in range(3)]

    assert answers == ["v1", "v2", "v3"]
    assert "probe:off" not in _probe


def test_push_cache__filled_directly__refused():
    with pytest.raises(TypeError, match="filled through get_or_load"):
        _probe.set("probe:direct", 1)


def test_local_cache__more_keys_than_its_bound__least_recently_used_dropped():
    for key in ("a", "b", "c"):
        _plain.set(key, key.upper())
    assert _plain.get("a") == "A"  # "a" is now the most recently used

    _plain.set("d", "D")

    assert len(_plain) == 3
    assert [_plain.get(k) for k in ("a", "b", "c", "d")] == ["A", None, "C", "D"]


def test_local_cache__ttl_elapsed__value_gone(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("core.cache.monotonic", lambda: now[0])
    _plain.set("k", "v")
    _plain.set("short", "s", ttl=1.0)

    now[0] += 1.0
    assert (_plain.get("k"), _plain.get("short")) == ("v", None)
    now[0] += 9.0
    assert _plain.get("k") is None
    assert len(_plain) == 0


def test_local_cache__none__never_kept():
    load_none = [0]

    def load():
        load_none[0] += 1

    assert _plain.get_or_load("nothing", load) is None
    assert _plain.get_or_load("nothing", load) is None
    assert load_none[0] == 2


def test_clear_all__every_app_cache__registered_and_emptied():
    for owner in ("core.api.tenancy", "core.api.throttling", "flags.selectors", "registry.api.authentication", "registry.selectors",
                  "registry.tokens", "tenants.cache", "tenants.selectors", "releases.selectors"):
        importlib.import_module(owner)  # every module that owns a cache

    assert _connected()
    names = {c.name: c.push for c in caches()}
    assert {n: push for n, push in names.items() if not n.startswith(("probe", "tests."))} == {
        "cfg:": True, "env:": True, "apikey:": True, "flags:gen:": True, "reg:disc:": True,
        "registry:instance-owner:": True, "reg:inst:": True, "registry:service-token-secrets:": True,
        "tenants.by-slug": False, "tenants.resolved": False, "tenants.api-key-used": False,
        "flags.compiled": False, "flags.answers": False, "flags.evaluate-answers": False, "flags.unleash": False, "registry.verified-tokens": False,
        "tenancy.slug-by-id": False, "throttle.leases": False, "releases:pins": True, "releases.pinned-views": False,
    }
    for c in caches():
        if c.push:
            c.get_or_load(c.name + "x", lambda: 1)
        else:
            c.set(c.name + "x", 1)
    assert [c.name for c in caches() if c.name + "x" not in c] == []

    clear_all()

    assert {c.name: len(c) for c in caches()} == {name: 0 for name in names}


def test_local_cache__same_name_twice__refused():
    with pytest.raises(ValueError, match="exists already"):
        LocalCache("tests.plain", max_items=1)


def test_revoked_key__other_process_cached_it__refused_at_once(tenant, make_key, client_for):
    from tenants.models import ApiKey
    from tenants.services.api_keys import api_key_revoke

    raw = make_key(tenant=tenant, scopes=["configs:read"], name="shared")
    client = client_for(raw)
    client.get("/api/v1/configs/")
    assert _wait(invalidation.connected)
    assert client.get("/api/v1/configs/").status_code == 200

    api_key_revoke(api_key=ApiKey.objects.get(name="shared"), actor="t")

    assert client.get("/api/v1/configs/").status_code == 401


def test_local_cache__hits_while_another_thread_scans_and_writes__no_error():
    import sys
    import threading

    cache = _plain_big
    errors, done = [], threading.Event()

    def reader():
        while not done.is_set():
            try:
                for i in range(200):
                    cache.get(f"t{i % 20}:{i % 7}")
            except Exception as exc:  # noqa: BLE001 - any error is the failure
                errors.append(repr(exc))

    def writer():
        try:
            for round_ in range(1500):
                for i in range(20):
                    cache.set(f"t{(round_ + i) % 20}:{i % 7}", i)
                cache.delete_prefix(f"t{round_ % 20}:")
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))
        finally:
            done.set()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=reader) for _ in range(2)] + [threading.Thread(target=writer)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)

    assert errors == []
    assert done.is_set()
