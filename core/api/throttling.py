"""Per-credential throttling (one fixed-window counter per key or user, shared by
every process through Redis), with no Redis round trip on the hot path.

DRF's ``SimpleRateThrottle`` keeps a list of request times per caller and
rewrites it on every request, which grows with the rate. Here each caller has one
counter per window in Redis, and each process holds a **lease** on it: it claims
a block of the window's budget with one ``INCRBY`` and admits that many requests
from memory (:class:`_Lease`). A background thread claims the next block when
half of the current one is spent, so a caller in its steady state costs no round
trip at all; the first request of a window (once a minute per caller and process)
claims synchronously. The limit holds across processes because a process admits
only what it claimed: Redis's counter is the sum of every block, and a claim past
the limit is granted only the part below it. So no more than the limit is ever
admitted per window; at most the blocks other processes hold unspent are refused
early. Blocks are 1/100 of the limit and shrink to a quarter of what remains near
the end of the budget, so that margin is small (``tests/security/test_throttle_processes.py``
holds two processes to the limit within a few percent). Below 100 requests per
window a block is one request: exact counting, a round trip per request, as the
tests' small rates use.

If the cache is down the throttle fails open: availability of reads beats rate
limiting.
"""
from __future__ import annotations

import ipaddress
import logging
import threading
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from core.cache import LocalCache

from .principal import Principal

logger = logging.getLogger(__name__)

_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
_rates: dict[str | None, tuple[int, int] | None] = {}


def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """``"600/min"`` → (600, 60); ``None``, ``""`` or ``"off"`` → no limit."""
    if not rate or rate.lower() in ("off", "none", "0"):
        return None
    count, _, unit = rate.partition("/")
    return int(count), _UNITS[unit.strip().lower()]


def _rate(rate: str | None) -> tuple[int, int] | None:
    try:
        return _rates[rate]
    except KeyError:
        parsed = _rates[rate] = parse_rate(rate)
        return parsed


def admit(principal: Principal) -> float | None:
    """Count one request of ``principal``: None when it is within its rate, else the
    seconds until its window ends. The one place requests are counted."""
    limit = _rate(getattr(settings, "API_THROTTLE_RATE", None))
    if limit is None:
        return None
    count_max, window = limit
    now = time.time()
    bucket = int(now // window)
    ck = (principal.kind, principal.ident, bucket, count_max, window)
    lease = _leases.get(ck)
    if lease is None:
        with _leases_lock:
            lease = _leases.get(ck)
            if lease is None:
                lease = _Lease(f"thr:{principal.kind}:{principal.ident}:{bucket}", count_max, window)
                _leases.set(ck, lease)
    if lease.take():
        return None
    return (bucket + 1) * window - now


# --- the per-process leases on the shared counters ---------------------------------

# One lease per (caller, window, rate) in this process; dropped with every local
# cache (tests), and pushed out once a window is over (it is never asked again).
_leases = LocalCache("throttle.leases", max_items=20_000)
_leases_lock = threading.Lock()
_BLOCKS_PER_LIMIT = 100


class _Lease:
    """This process's share of one caller's window: ``left`` requests it may admit
    without asking Redis, claimed in blocks (see the module docstring)."""

    __slots__ = ("name", "limit", "window", "block", "left", "total", "exhausted", "refilling", "lock")

    def __init__(self, name: str, limit: int, window: int):
        self.name = name
        self.limit = limit
        self.window = window
        self.block = max(1, limit // _BLOCKS_PER_LIMIT)
        self.left = 0
        self.total = 0  # Redis's count after this process's last claim
        self.exhausted = False  # the window's whole budget is claimed: refuse without asking
        self.refilling = False
        self.lock = threading.Lock()

    def take(self) -> bool:
        """Admit one request (True) or refuse it (False)."""
        with self.lock:
            if self.left > 0:
                self.left -= 1
                if self.left <= self.block // 2 and self.block > 1 and not self.refilling and not self.exhausted:
                    self.refilling = True
                    _refiller.want(self)
                return True
            if self.exhausted:
                return False
            granted = self._claim(self._next_block())
            if granted is None:  # the cache is down: fail open
                return True
            if granted == 0:
                return False
            self.left += granted - 1
            return True

    def refill(self) -> None:
        """Claim the next block ahead of need (the refiller thread). The round trip
        runs without the lock: requests go on spending what is left meanwhile."""
        with self.lock:
            if self.exhausted or self.left > self.block // 2:
                self.refilling = False
                return
            count = self._next_block()
        total = None
        try:
            total = _counter_add(self.name, count, self.window)
        finally:
            with self.lock:
                self.refilling = False
                if total is not None:
                    self.left += self._granted(count, total)

    def _next_block(self) -> int:
        # A quarter of what is left of the budget, at most a block: near the end
        # the blocks shrink, so other processes hold little of it unspent.
        return max(1, min(self.block, (self.limit - self.total) // 4))

    def _claim(self, count: int) -> int | None:
        """Add ``count`` to the shared counter: how many of them are within the limit
        (None: the cache is down). The lock is held."""
        total = _counter_add(self.name, count, self.window)
        return None if total is None else self._granted(count, total)

    def _granted(self, count: int, total: int) -> int:
        """How many of ``count`` just claimed are within the limit, Redis's counter
        being ``total`` after the claim. The lock is held."""
        self.total = max(self.total, total)
        if total >= self.limit:
            self.exhausted = True
        return max(0, min(count, self.limit - (total - count)))


def _counter_add(name: str, count: int, window: int) -> int | None:
    """Add ``count`` to the window counter ``name`` (created to expire after the
    window): its new value, one round trip; None when the cache is down."""
    try:
        if settings.REDIS_URL:
            from django_redis import get_redis_connection

            key = cache.make_and_validate_key(name)
            pipe = get_redis_connection("default").pipeline(transaction=False)
            pipe.incrby(key, count)
            pipe.expire(key, window + 1, nx=True)
            return int(pipe.execute()[0])
        cache.add(name, 0, window + 1)
        return cache.incr(name, count)
    except ValueError:  # the key expired between add and incr (no Redis)
        return count
    except Exception:  # noqa: BLE001 - cache down: fail open
        return None


class _Refiller:
    """One daemon thread per process that claims the next blocks of busy leases."""

    def __init__(self) -> None:
        self._queue: list[_Lease] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def want(self, lease: _Lease) -> None:
        with self._wake:
            self._queue.append(lease)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="throttle-refill", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._queue:
                    self._wake.wait()
                lease = self._queue.pop(0)
            try:
                lease.refill()
            except Exception:  # noqa: BLE001 - the next request claims synchronously
                logger.exception("throttle refill failed")


_refiller = _Refiller()


def _window_count(name: str, window: int, *, record: bool = True) -> tuple[int | None, float]:
    """The count of ``name`` in the current fixed window (one more first with
    ``record``) and the seconds until the window ends. None: the cache is down
    (callers fail open)."""
    now = time.time()
    bucket = int(now // window)
    key = f"{name}:{bucket}"
    try:
        if not record:
            count = cache.get(key) or 0
        elif cache.add(key, 1, window + 1):
            count = 1
        else:
            count = cache.incr(key)
    except ValueError:
        count = 1  # the key expired between add and incr
    except Exception:  # noqa: BLE001 - cache down: fail open
        return None, 0.0
    return count, (bucket + 1) * window - now


class PrincipalRateThrottle(BaseThrottle):
    """``API_THROTTLE_RATE`` requests per window for each API key, user or service."""

    def __init__(self) -> None:
        self.wait_seconds: float | None = None

    def allow_request(self, request, view) -> bool:
        principal = request.auth
        if not isinstance(principal, Principal):
            return True
        self.wait_seconds = admit(principal)
        return self.wait_seconds is None

    def wait(self) -> float | None:
        return self.wait_seconds


# --- failed authentication, per client address -----------------------------------
# An unknown API key costs a database query (a known one is cached): a client
# that keeps sending unknown keys is answered 429 once it has failed
# API_AUTH_FAILURE_RATE times in a window, and costs no query until the window
# ends. A key the hub already holds in its cache keeps working meanwhile.


def client_address(request) -> str:
    """The client's address: the TCP peer (REMOTE_ADDR), or with TRUSTED_PROXY_COUNT=N
    the X-Forwarded-For entry the outermost of the N trusted proxies appended (a
    client cannot choose it: entries it adds itself stand to the left). Used by the
    login lockout (AXES_CLIENT_IP_CALLABLE) and the unknown-key throttle alike."""
    remote = request.META.get("REMOTE_ADDR") or "unknown"
    hops = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    if hops > 0:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if forwarded:
            candidate = forwarded[-hops] if len(forwarded) >= hops else forwarded[0]
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                pass
    return remote


def _failure_limit() -> tuple[int, int] | None:
    return parse_rate(getattr(settings, "API_AUTH_FAILURE_RATE", None))


def auth_failures_wait(address: str, *, record: bool = False) -> float | None:
    """Seconds until ``address`` may try unknown keys again, or None when it may now.

    ``record=True`` counts one more failure first. Fails open if the cache is down.
    """
    limit = _failure_limit()
    if limit is None:
        return None
    count_max, window = limit
    count, wait = _window_count(f"authfail:{address}", window, record=record)
    if count is None:
        return None
    over = count > count_max if record else count >= count_max
    return wait if over else None
