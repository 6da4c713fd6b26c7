"""The garbage collector of a web worker, tuned for the tail (docs/performance.md,
"The tail was the garbage collector").

CPython's full collection walks every container object the process holds. A worker
holds about a million after start-up (Django, DRF, the hub's modules), and with
10,000 change-stream listeners half a million more; a full collection then took
70-95 ms (300-370 ms with the listeners), about once a second under load, and every
request of the worker waited for it: that pause was the p99 of every route, the
bare view's included.

:func:`tune` (called by ``config_hub/gunicorn.conf.py`` once a worker has loaded the
application):
- collects once and **freezes** what start-up built (``gc.freeze``): those objects
  live as long as the process; the collector no longer walks them;
- raises the first generation's threshold (``GC_THRESHOLD``, default 7000,10,100
  against Python's 700,10,10), so a request's short-lived objects die before they
  are promoted and full collections become rare;
- starts one thread that, every ``GC_FREEZE_INTERVAL`` seconds (10), collects the
  young generations and freezes what survived them, so objects that live long
  (listeners, caches) leave the collector's walk too; and every
  ``GC_FULL_INTERVAL`` seconds (3600) unfreezes everything and runs one full
  collection, so a reference cycle that became garbage after it was frozen (a
  listener gone, a cache entry dropped) is reclaimed within the hour. That one
  collection is the only long pause: one per worker per hour, at a moment spread
  between workers, instead of one a second.

Objects freed by reference counting (most garbage) are freed at once, frozen or not.
"""
import gc
import logging
import random
import threading
import time

logger = logging.getLogger(__name__)

_started = False
_lock = threading.Lock()


def parse_thresholds(value: str) -> tuple[int, ...] | None:
    """``"7000,10,10"`` -> (7000, 10, 10); empty: keep Python's."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        numbers = tuple(int(part) for part in value.split(","))
    except ValueError:
        numbers = ()
    if not 1 <= len(numbers) <= 3 or any(n < 0 for n in numbers):
        raise ValueError(f"GC_THRESHOLD takes one to three non-negative integers, not {value!r}")
    return numbers


def freeze_survivors() -> None:
    """Collect the young generations, then freeze what is left (it has lived through them)."""
    gc.collect(1)
    gc.freeze()


def full_collection() -> int:
    """Unfreeze, collect everything, freeze again: the hourly pause. Returns what was collected."""
    started = time.perf_counter()
    gc.unfreeze()
    collected = gc.collect()
    gc.freeze()
    logger.info("full garbage collection: %d objects collected in %.0f ms, %d frozen",
                collected, (time.perf_counter() - started) * 1000, gc.get_freeze_count())
    return collected


def _maintain(freeze_every: float, full_every: float) -> None:
    # The first full collection at a random point of the interval: workers started
    # together do not pause together.
    next_full = time.monotonic() + random.uniform(0.5, 1.0) * full_every
    while True:
        time.sleep(freeze_every)
        try:
            if time.monotonic() >= next_full:
                full_collection()
                next_full = time.monotonic() + full_every
            else:
                freeze_survivors()
        except Exception:  # never let the collector's upkeep end the thread
            logger.exception("garbage collector upkeep failed")


def log_pauses(threshold_ms: float) -> None:
    """Log every collection that pauses the process for ``threshold_ms`` or more
    (``GC_LOG_PAUSES_MS``): the way to see whether a tail is the collector's."""
    started = {}

    def callback(phase, info):
        if phase == "start":
            started["at"] = time.perf_counter()
        elif "at" in started:
            pause = (time.perf_counter() - started.pop("at")) * 1000
            if pause >= threshold_ms:
                logger.warning("garbage collection of generation %d paused %.1f ms (%d collected, %d objects tracked, %d frozen)",
                               info["generation"], pause, info["collected"], sum(gc.get_count()), gc.get_freeze_count())

    gc.callbacks.append(callback)


def tune(*, thresholds: str = "7000,10,100", freeze_every: float = 10.0, full_every: float = 3600.0,
         log_pauses_ms: float = 0) -> None:
    """Once per process (see the module's docstring). ``freeze_every`` 0: no upkeep thread."""
    global _started
    with _lock:
        if _started:
            return
        _started = True
    gc.collect()
    gc.freeze()
    numbers = parse_thresholds(thresholds)
    if numbers:
        gc.set_threshold(*numbers)
    if log_pauses_ms > 0:
        log_pauses(log_pauses_ms)
    if freeze_every > 0:
        threading.Thread(target=_maintain, args=(freeze_every, max(full_every, freeze_every)),
                         name="gc-upkeep", daemon=True).start()
