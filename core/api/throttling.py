"""Per-credential throttling on the shared cache (one counter per key or user per window).

DRF's ``SimpleRateThrottle`` keeps a list of request times per caller and
rewrites it on every request, which grows with the rate; a fixed-window counter
costs one ``INCR`` whatever the rate. Every process shares the counter through
Redis, so the limit holds across gunicorn workers. If the cache is down the
throttle fails open: availability of reads beats rate limiting.
"""
from __future__ import annotations

import ipaddress
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from .principal import Principal

_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """``"600/min"`` → (600, 60); ``None``, ``""`` or ``"off"`` → no limit."""
    if not rate or rate.lower() in ("off", "none", "0"):
        return None
    count, _, unit = rate.partition("/")
    return int(count), _UNITS[unit.strip().lower()]


def admit(principal: Principal) -> float | None:
    """Count one request of ``principal``: None when it is within its rate, else the
    seconds until its window ends. The one place requests are counted."""
    limit = parse_rate(getattr(settings, "API_THROTTLE_RATE", None))
    if limit is None:
        return None
    count_max, window = limit
    count, wait = _window_count(f"thr:{principal.kind}:{principal.ident}", window)
    if count is None or count <= count_max:
        return None
    return wait


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
