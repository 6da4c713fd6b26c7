"""How the client learns that something changed. A transport turns "what happened
after this cursor" into a :class:`Batch`; the client re-fetches its bundle (with
``If-None-Match``) when a batch holds a relevant event or says ``reset``.

Three, each the fallback of the one before:
- :class:`StreamTransport`: the change stream (``GET /api/v1/stream``, server-sent
  events) read by a thread of its own, resumed with ``Last-Event-ID``;
- :class:`LongPollTransport`: ``GET /api/v1/events/?after=&wait=``;
- :class:`PollingTransport`: no events at all, a revalidation every ``interval`` seconds.
Two methods: ``head()`` → the cursor to start from, ``next(cursor)`` → the events
after it as they arrive (a ``reset`` → ``Batch(reset=True)``). The cursor is the
outbox's event id for both event transports, so one can take over from the other.
"""
from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import ConfigHubError, HubUnavailable
from .http import Http, Stream


@dataclass
class Batch:
    events: list[dict[str, Any]] = field(default_factory=list)
    cursor: int | None = None
    reset: bool = False  # "fetch everything again" (no event detail, or history lost)


class Transport(Protocol):
    def head(self) -> int | None: ...

    def next(self, cursor: int | None) -> Batch: ...


class EventsNotAvailable(Exception):
    """The key may not read events (no ``events:read``) or the hub has no such route:
    ``fallback`` names the transport to use instead (``"longpoll"`` or ``"poll"``)."""

    def __init__(self, message: str, fallback: str = "poll"):
        super().__init__(message)
        self.fallback = fallback


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
                raise EventsNotAvailable(str(exc), "poll") from exc
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


class StreamTransport:
    """``GET /api/v1/stream`` (server-sent events), read line by line by a thread of
    its own that queues what arrives; :meth:`next` hands over everything queued at
    once, so a burst of events costs one revalidation of the bundle.

    - ``head()`` opens the stream from now: its first ``id:`` is the cursor, and the
      same connection then carries every later event.
    - After a break (or the hub ending the answer, e.g. a hub served without ASGI
      answers once with ``retry:``), :meth:`next` opens it again with
      ``Last-Event-ID: <cursor>``: the hub replays what was missed, or sends
      ``reset`` (→ ``Batch(reset=True)``: fetch everything again).
    - The hub without the stream (404/405/400) or a stream that twice in a row
      breaks before its first line (a proxy that buffers it): :class:`EventsNotAvailable`
      with ``fallback="longpoll"``; a key without ``events:read`` (403): ``"poll"``.
    - ``read_timeout``: the longest silence before the stream counts as broken (the
      hub sends a keepalive comment every 15 s).
    """

    def __init__(self, http: Http, stop: threading.Event, *, types: tuple[str, ...] = (),
                 read_timeout: float = 45.0):
        self.http = http
        self.stop = stop
        self.params = {"types": ",".join(types)} if types else None
        self.read_timeout = read_timeout
        self._queue: queue.Queue | None = None
        self._stream: Stream | None = None
        self._thread: threading.Thread | None = None
        self._retry = 1.0  # seconds before reopening a stream the hub ended (its ``retry:``)
        self._silent_failures = 0

    @property
    def is_open(self) -> bool:
        return self._stream is not None and self._thread is not None and self._thread.is_alive()

    # --- the transport ------------------------------------------------------------------

    def head(self) -> int | None:
        self._close()
        self._open(None)
        while True:
            kind, *rest = self._take()
            if kind == "cursor":
                return rest[0]
            if kind in ("error", "end"):
                self._close()
                if kind == "error":
                    raise rest[0]
                return None

    def next(self, cursor: int | None) -> Batch:
        if self._queue is None:
            self._open(cursor)
        items = [self._take()]
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        batch = Batch(cursor=cursor)
        failure: Exception | None = None
        for kind, *rest in items:
            if kind == "event":
                batch.cursor = rest[0] if rest[0] is not None else batch.cursor
                batch.events.append(rest[1])
            elif kind == "cursor" and rest[0] is not None:
                batch.cursor = rest[0]
            elif kind == "reset":
                batch.cursor, batch.reset = rest[0], True
            elif kind == "end":
                self._close()
                if not batch.events and not batch.reset:
                    self.stop.wait(self._retry)  # as an EventSource waits its ``retry``
            elif kind == "error":
                self._close()
                failure = rest[0]
        if failure is not None and not batch.events and not batch.reset:
            raise failure
        return batch

    def close(self) -> None:
        self._close()

    # --- the connection and its reader ---------------------------------------------------------

    def _open(self, cursor: int | None) -> None:
        headers = {"Last-Event-ID": str(cursor)} if cursor is not None else None
        try:
            stream = self.http.stream("/api/v1/stream", params=self.params, headers=headers, timeout=self.read_timeout)
        except ConfigHubError as exc:
            if exc.status in (400, 404, 405):
                raise EventsNotAvailable(f"no usable stream ({exc}): the long poll instead", "longpoll") from exc
            if exc.status == 403:
                raise EventsNotAvailable(str(exc), "poll") from exc
            raise
        self._stream = stream
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream, self._queue), name="confighub-stream",
                                        daemon=True)
        self._thread.start()

    def _close(self) -> None:
        stream, self._stream, self._queue = self._stream, None, None
        if stream is not None:
            stream.close()

    def _take(self) -> tuple:
        item = self._queue.get()
        if item[0] == "error" and isinstance(item[1], HubUnavailable) and not item[2]:
            self._silent_failures += 1
            if self._silent_failures >= 2:
                self._close()
                raise EventsNotAvailable("the stream breaks before its first line (a proxy buffering it?): "
                                         "the long poll instead", "longpoll")
        elif item[0] != "error":
            self._silent_failures = 0
        return item[:2] if item[0] == "error" else item

    def _read(self, stream: Stream, out: queue.Queue) -> None:
        """The reader thread: one server-sent event per blank line (``id``, ``event``,
        ``data``, ``retry``; comments skipped)."""
        seen_any = False
        fields: dict[str, str] = {}
        data: list[str] = []
        try:
            for line in stream.lines():
                seen_any = True
                if line.startswith(":"):
                    continue
                if line:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "data":
                        data.append(value)
                    elif name == "retry" and value.isdigit():
                        self._retry = int(value) / 1000
                    elif name in ("id", "event"):
                        fields[name] = value
                    continue
                if fields or data:  # (a comment alone, e.g. a keepalive, dispatches nothing)
                    out.put(_dispatch(fields, data))
                fields, data = {}, []
            out.put(("end",))
        except HubUnavailable as exc:
            out.put(("error", exc, seen_any))
        except Exception as exc:  # noqa: BLE001 - whatever it is, the client's thread decides
            out.put(("error", HubUnavailable(f"the stream failed: {exc.__class__.__name__}: {exc}"), seen_any))


def _dispatch(fields: dict[str, str], data: list[str]) -> tuple:
    """One event's fields as a queue item: ("event", id, event), ("reset", id) or ("cursor", id)."""
    raw_id = fields.get("id", "")
    event_id = int(raw_id) if raw_id.isdigit() else None
    if fields.get("event") == "reset":
        return ("reset", event_id)
    if data:
        try:
            event = json.loads("\n".join(data))
        except ValueError:
            event = {"type": fields.get("event", "message"), "data": None}
        if not isinstance(event, dict):
            event = {"type": fields.get("event", "message"), "data": event}
        return ("event", event_id, event)
    return ("cursor", event_id)
