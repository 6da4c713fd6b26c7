"""What a listener of the stream's hub (events.stream) waits on: plain futures that
the hub's fan-out resolves, no task and no ``asyncio.wait_for`` per wake-up."""
from __future__ import annotations

import asyncio


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
