"""What a listener of the stream's hub (events.stream) waits on: plain futures that
the hub's fan-out resolves, no task and no ``asyncio.wait_for`` per wake-up; and the
fan-out itself, a slice of listeners per turn of the event loop."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

# Listeners woken, or handed a read's answer, per turn of the event loop
# (wake_in_slices, SharedCalls): each then runs (about 40 us to write its frames);
# between turns the loop serves its other sockets. 5,000 at once held the loop for
# 40-250 ms while every other request of the process waited.
SLICE = 200
# How long a shared call's answer is handed to later callers of the same wake-up
# (SharedCalls): long enough for the slices of 10,000 listeners, short enough that
# a caller coming later (a new long poll, a wait's last look) reads the outbox itself.
ANSWER_KEPT = 1.0


class Listener:
    """One waiting listener of the hub: woken by the hub's fan-out (a flag, and the
    future it is waiting on, if any: no task, no ``wait_for`` per wake-up)."""

    __slots__ = ("loop", "woken", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.woken = False
        self.future: asyncio.Future | None = None

    def wake(self) -> None:
        self.woken = True
        future = self.future
        if future is not None and not future.done():
            future.set_result(None)

    async def wait(self, timeout: float) -> bool:
        """Until woken (True) or ``timeout`` seconds (False)."""
        if self.woken:
            return True
        future = self.future = self.loop.create_future()
        timer = self.loop.call_later(max(timeout, 0), _expire, future)
        try:
            await future
        finally:
            timer.cancel()
            self.future = None
        return self.woken


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def pass_on(own: asyncio.Future, shared: asyncio.Future) -> None:
    """Hands the shared call's outcome to one caller's own future (what ``asyncio.shield`` does)."""
    if own.done():
        return
    if shared.cancelled():
        own.cancel()
    elif shared.exception() is not None:
        own.set_exception(shared.exception())
    else:
        own.set_result(shared.result())


def wake_in_slices(loop: asyncio.AbstractEventLoop, listeners: list[Listener], start: int = 0) -> None:
    """Wakes :data:`SLICE` listeners per turn of the loop, the next slice on the next turn."""
    end = start + SLICE
    for listener in listeners[start:end]:
        listener.wake()
    if end < len(listeners):
        loop.call_soon(wake_in_slices, loop, listeners, end)


class _Call:
    """One shared call: who waits for it, and its answer once it came."""

    __slots__ = ("waiters", "outcome", "at")

    def __init__(self):
        self.waiters: list[asyncio.Future] = []
        self.outcome: asyncio.Future | None = None
        self.at = 0.0


class SharedCalls:
    """Calls shared by the listeners of one wake-up: the same ``key`` is called once
    while it runs, and its answer is handed to later callers for :data:`ANSWER_KEPT`
    seconds until :meth:`forget` (listeners of one wake-up are woken a slice at a
    time, so the later ones come after the call has answered). The hub forgets at
    every wake-up, and every commit is followed by one, so no caller is handed an
    answer older than what woke it. A failed call is not kept. Answers are handed
    out :data:`SLICE` callers per turn of the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._calls: dict[tuple, _Call] = {}

    def forget(self) -> None:
        self._calls.clear()

    async def call(self, key: tuple, start: Callable[[], Awaitable]):
        call = self._calls.get(key)
        if call is not None and call.outcome is not None and self.loop.time() - call.at > ANSWER_KEPT:
            call = None  # kept for the slices of one wake-up, not for later callers
        if call is None:
            call = self._calls[key] = _Call()
            future = asyncio.ensure_future(start())
            future.add_done_callback(lambda done: self._answered(key, call, done))
        elif call.outcome is not None:
            return call.outcome.result()
        # Each caller awaits its own future (what ``asyncio.shield`` does, leaner): one
        # that leaves (its client gone) does not cancel the shared call.
        own = self.loop.create_future()
        call.waiters.append(own)
        return await own

    def _answered(self, key: tuple, call: _Call, future: asyncio.Future) -> None:
        if future.cancelled() or future.exception() is not None:
            if self._calls.get(key) is call:
                del self._calls[key]  # the next caller calls again
        else:
            call.outcome, call.at = future, self.loop.time()
        self._deliver(call.waiters, future, 0)

    def _deliver(self, waiters: list, future: asyncio.Future, start: int) -> None:
        end = start + SLICE
        for own in waiters[start:end]:
            pass_on(own, future)
        if end < len(waiters):
            self.loop.call_soon(self._deliver, waiters, future, end)
