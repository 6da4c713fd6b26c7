"""How the client learns that something changed. A transport turns "what happened
after this cursor" into a :class:`Batch`; the client re-fetches its bundle (with
``If-None-Match``) when a batch holds a relevant event or says ``reset``.

Today: :class:`LongPollTransport` (``GET /api/v1/events/?after=&wait=``) and
:class:`PollingTransport` (no events at all: every ``interval`` seconds, a
revalidation). A server-sent-events transport (``GET /api/v1/stream``) fits the
same two methods: ``head()`` → the cursor to start from, ``next(cursor)`` → the
events after it as they arrive (its ``reset`` event → ``Batch(reset=True)``).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import ConfigHubError
from .http import Http


@dataclass
class Batch:
    events: list[dict[str, Any]] = field(default_factory=list)
    cursor: int | None = None
    reset: bool = False  # "fetch everything again" (no event detail, or history lost)


class Transport(Protocol):
    def head(self) -> int | None: ...

    def next(self, cursor: int | None) -> Batch: ...


class EventsNotAvailable(Exception):
    """The key may not read events (no ``events:read``) or the hub has no such route."""


class LongPollTransport:
    """``GET /api/v1/events/?after=<cursor>&wait=<wait>``: returns as soon as an
    event arrives, or empty after ``wait`` seconds."""

    PAGE = 1000

    def __init__(self, http: Http, *, wait: int = 30):
        self.http = http
        self.wait = wait

    def _page(self, after: int, wait: int) -> dict[str, Any]:
        try:
            return self.http.request("GET", "/api/v1/events/", params={"after": after, "wait": wait, "limit": self.PAGE},
                                     timeout=wait + 15).json()
        except ConfigHubError as exc:
            if exc.status in (403, 404):
                raise EventsNotAvailable(str(exc)) from exc
            raise

    def head(self) -> int | None:
        """The newest event's id (the cursor to wait after), paging through what is kept."""
        cursor = 0
        while True:
            page = self._page(cursor, 0)
            cursor = int(page["cursor"])
            if len(page["events"]) < self.PAGE:
                return cursor

    def next(self, cursor: int | None) -> Batch:
        page = self._page(cursor or 0, self.wait)
        return Batch(events=list(page["events"]), cursor=int(page["cursor"]))


class PollingTransport:
    """No events: every ``interval`` seconds a batch that says "revalidate" (the
    bundle's ETag makes an unchanged answer a 304)."""

    def __init__(self, stop: threading.Event, *, interval: float = 30.0):
        self.stop = stop
        self.interval = interval

    def head(self) -> int | None:
        return None

    def next(self, cursor: int | None) -> Batch:
        self.stop.wait(self.interval)
        return Batch(cursor=cursor, reset=True)
