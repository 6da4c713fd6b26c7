"""The change stream (``GET /api/v1/stream``, server-sent events): one hub per process.

A process (one event loop under uvicorn) has one :class:`Hub`. It holds that
process's listeners and ONE source of wake-ups for all of them:
- with Redis, one pub/sub subscription to :data:`events.watch.CHANNEL` (the id of
  each committed event, published by ``watchers_wake``); when the subscription
  breaks, every listener is woken on reconnect and, meanwhile, the hub polls;
- without Redis (the embedded default), the in-process commit notification
  (``watch.on_commit_notify``) and a look at the outbox's latest id every
  ``EVENTS_POLL_INTERVAL`` seconds for other processes' events.

A wake-up carries no event: each listener reads the outbox after its own cursor
with the long poll's selector (``selectors.events_after``, the same visibility
rules), so nothing is lost and the order is the outbox's. Listeners at the same
cursor with the same visibility share one query, one serialisation and the same
encoded frames (:meth:`Hub.fetch`); each waits on a plain future the fan-out
resolves (:class:`Listener`). The queries run on a few threads of the hub
(``EVENTS_STREAM_DB_THREADS``), each keeping its database connection, never one
per listener. A listener that does not read holds up only its own coroutine:
what it is sent waits in a buffer of ``EVENTS_STREAM_BUFFER`` bytes
(``config_hub.asgi.BoundedSend``); left full for ``EVENTS_STREAM_KEEPALIVE``
seconds, the connection is closed and the listener resumes by id.

The long poll under ASGI (:func:`wait_for_events`) is a listener of the same hub.
"""
from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections, connection

from . import selectors, watch
from .messages import event_payload
from .models import Event, event_matches
from .waiting import Listener, SharedCalls, wake_in_slices

logger = logging.getLogger(__name__)

BATCH = 100


class StreamRefused(Exception):
    status = 503
    code = "stream_capacity"
    retry_after = 5


@dataclass(frozen=True)
class Plan:
    """One listener: who may see what (the long poll's rules), its filter and its cursor."""

    tenant_id: int | None
    all_tenants: bool
    tenant_filter: int | None
    after: int | None  # None: from the latest event on
    resource_types: tuple[str, ...] = ()
    environment: str = ""
    service_name: str = ""
    key_prefix: str = ""
    # True: events of no environment (a flag's definition, a segment) pass the environment filter too.
    environment_wide: bool = False

    @property
    def visibility(self) -> tuple:
        return (self.tenant_id, self.all_tenants, self.tenant_filter)

    def matches(self, event: Event) -> bool:
        environment = "" if self.environment_wide and not event.environment else self.environment
        return event_matches(event, resource_types=self.resource_types, key_prefix=self.key_prefix,
                             environment=environment, service_name=self.service_name)


def frame(event_id: int | None, event: str, data: dict) -> str:
    """One server-sent event; the JSON is on one line, as the webhook body is (sorted keys)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'), sort_keys=True)}\n\n"


def _events_after(visibility: tuple, cursor: int) -> list[tuple[Event, bytes]]:
    """The events after ``cursor`` with their frames, encoded once: every listener
    of that visibility is handed the same bytes."""
    tenant_id, all_tenants, tenant_filter = visibility
    events = selectors.events_after(tenant_id=tenant_id, all_tenants=all_tenants, after=cursor, limit=BATCH,
                                    tenant_filter=tenant_filter)
    return [(e, frame(e.pk, f"{e.resource_type}.{e.action}", event_payload(e)).encode()) for e in events]


def _events_only(visibility: tuple, cursor: int, limit: int) -> list[Event]:
    tenant_id, all_tenants, tenant_filter = visibility
    return list(selectors.events_after(tenant_id=tenant_id, all_tenants=all_tenants, after=cursor, limit=limit,
                                       tenant_filter=tenant_filter))


def outbox_bounds() -> tuple[int | None, int | None]:
    """The outbox's oldest and latest ids (one statement, no ORM compilation: it runs
    at every connect)."""
    with connection.cursor() as cursor:
        cursor.execute(_BOUNDS_SQL)
        oldest, latest = cursor.fetchone()
    return oldest, latest


_BOUNDS_SQL = f'SELECT MIN("id"), MAX("id") FROM "{Event._meta.db_table}"'


def latest_event_id() -> int | None:
    return Event.objects.order_by("-id").values_list("id", flat=True).first()


def _on_hub_thread(fn, *args):
    close_old_connections()  # this thread's connection, as at a request's start
    return fn(*args)


class Hub:
    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.listeners: set[Listener] = set()
        # Counts the wake-ups: a listener admitted after a look at the outbox knows
        # whether anything may have committed since (then it reads once).
        self.generation = 0
        self.executor = ThreadPoolExecutor(max_workers=settings.EVENTS_STREAM_DB_THREADS, thread_name_prefix="stream-db")
        # The outbox reads of this wake-up, in flight or answered (shared by listeners).
        self.reads = SharedCalls(loop)
        self._task: asyncio.Task | None = None
        watch.on_commit_notify(self._wake_threadsafe)

    # --- listeners ---------------------------------------------------------------

    def has_room(self) -> bool:
        return len(self.listeners) < settings.EVENTS_STREAM_MAX_PER_PROCESS

    def admit(self) -> Listener:
        if not self.has_room():
            raise StreamRefused("this server holds as many stream listeners as it allows "
                                "(EVENTS_STREAM_MAX_PER_PROCESS); try again shortly")
        listener = Listener(self.loop)
        self.listeners.add(listener)
        if not self.watching():
            self._task = self.loop.create_task(self._watch())
        return listener

    def watching(self) -> bool:
        """Whether the one source of wake-ups runs (every commit since counts in ``generation``)."""
        return self._task is not None and not self._task.done()

    def leave(self, listener: Listener) -> None:
        self.listeners.discard(listener)

    def wake_all(self) -> None:
        self.generation += 1
        # What was read before this wake-up may miss what woke it: read again.
        self.reads.forget()
        wake_in_slices(self.loop, list(self.listeners))

    def _wake_threadsafe(self) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.wake_all)

    # --- the database, on the hub's threads -------------------------------------------

    def run_sync(self, fn, *args):
        """``fn(*args)`` on one of the hub's threads (each keeps its database connection)."""
        return self.loop.run_in_executor(self.executor, functools.partial(_on_hub_thread, fn, *args))

    async def fetch_events(self, visibility: tuple, cursor: int, limit: int) -> list[Event]:
        """The long poll's read: the events after ``cursor`` (at most ``limit``); waiters
        at the same cursor with the same visibility share one query."""
        return await self.shared(("events", visibility, cursor, limit), _events_only, visibility, cursor, limit)

    async def shared(self, key: tuple, fn, *args):
        """``fn(*args)`` on a hub thread, shared by the callers of one wake-up
        (:class:`events.waiting.SharedCalls`)."""
        return await self.reads.call(key, functools.partial(self.run_sync, fn, *args))

    async def fetch(self, plan: Plan, cursor: int) -> list[tuple[Event, bytes]]:
        """The events after ``cursor`` that ``plan``'s caller may see, with their frames;
        concurrent listeners asking the same share one query."""
        return await self.shared((plan.visibility, cursor), _events_after, plan.visibility, cursor)

    # --- the one source of wake-ups -----------------------------------------------------

    async def _watch(self) -> None:
        # Runs for the life of the process once a listener came (one subscription;
        # stopping when the last one leaves would race with the next one's arrival).
        while True:
            if settings.REDIS_URL:
                try:
                    await self._subscribed()
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - Redis down: poll meanwhile, then subscribe again
                    logger.info("stream: Redis pub/sub unavailable, polling the outbox", exc_info=True)
                await self._poll(seconds=2.0)
            else:
                await self._poll(seconds=None)

    async def _subscribed(self) -> None:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1.0, health_check_interval=15)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(watch.CHANNEL)
            # Whatever committed while (re)connecting is found by id.
            self.wake_all()
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None and message.get("type") == "message":
                    self.wake_all()
        finally:
            try:
                await pubsub.aclose()
                await client.aclose()
            except Exception:  # noqa: BLE001
                pass

    async def _poll(self, seconds: float | None) -> None:
        until = None if seconds is None else time.monotonic() + seconds
        seen = None
        while until is None or time.monotonic() < until:
            await asyncio.sleep(settings.EVENTS_POLL_INTERVAL)
            if not self.listeners:
                continue
            try:
                latest = await self.run_sync(latest_event_id)
            except Exception:  # noqa: BLE001 - database away: listeners keep their cursor
                logger.info("stream: outbox poll failed", exc_info=True)
                continue
            if latest != seen:  # (the first look wakes them too: nothing slips between)
                seen = latest
                self.wake_all()


_hub: list[Hub] = []


def hub() -> Hub:
    """This process's hub (one per event loop)."""
    loop = asyncio.get_running_loop()
    if not _hub or _hub[0].loop is not loop:
        _hub[:] = [Hub(loop)]
    return _hub[0]


class StreamBody:
    """One listener's answer: replay from the outbox, then live, written straight to
    the connection (``write(bytes)``). Admitted to the hub when made; ``close`` gives
    its place back (always called, even when the stream never started)."""

    def __init__(self, hub: Hub, plan: Plan):
        self.hub = hub
        self.plan = plan
        self.listener = hub.admit()

    def close(self) -> None:
        self.hub.leave(self.listener)

    async def render(self, matched: list[tuple[Event, bytes]]) -> bytes:
        """What the listener is sent for the events of a batch it may see (each its frame)."""
        return matched[0][1] if len(matched) == 1 else b"".join(data for _event, data in matched)

    async def reset(self, cursor: int) -> bytes:
        """What the listener is sent when its cursor can no longer be replayed."""
        return reset_frame(cursor).encode()

    async def serve(self, write, oldest: int | None, latest: int | None, missed: bool) -> None:
        """The stream after the checks. ``oldest``/``latest``: the outbox's bounds, read
        before admission; ``missed``: whether a wake-up may have come between that
        read and admission (then it reads once even from the latest id)."""
        hub, plan, listener = self.hub, self.plan, self.listener
        keepalive = settings.EVENTS_STREAM_KEEPALIVE
        listener.woken = missed
        if plan.after is None:
            # No cursor: from now on. The id line sets the client's Last-Event-ID,
            # so a reconnect resumes from here.
            cursor = latest or 0
            await write(f": connected\nid: {cursor}\n\n".encode())
        else:
            cursor = plan.after
            await write(b": connected\n\n")
            if reset_needed(cursor, oldest, latest):
                cursor = latest or 0
                await write(await self.reset(cursor))
            else:
                listener.woken = True  # the replay
        last_sent = time.monotonic()
        while True:
            if not listener.woken:
                left = keepalive - (time.monotonic() - last_sent)
                if left <= 0 or not await listener.wait(left):
                    await write(b": keepalive\n\n")
                    last_sent = time.monotonic()
                    continue
            listener.woken = False
            batch = await hub.fetch(plan, cursor)
            if batch:
                cursor = batch[-1][0].pk
                matched = [item for item in batch if plan.matches(item[0])]
                if matched:
                    await write(await self.render(matched))
                    last_sent = time.monotonic()
                if len(batch) >= BATCH:
                    listener.woken = True


@dataclass(frozen=True)
class Wait:
    """One long poll that found nothing yet (``GET /api/v1/events/?wait=`` under ASGI)."""

    visibility: tuple
    after: int
    seconds: int
    limit: int
    caller: str


async def wait_for_events(wait: Wait) -> list[Event]:
    """The long poll as a listener of the hub: a coroutine awaiting the process's
    wake-up, no thread held. Admitted before its first look at the outbox, so an
    event committed after that look wakes it. Beyond the caller's limit:
    ``watch.TooManyWaits`` (429); beyond the process's listener cap:
    ``watch.WaitRefused`` (503)."""
    hub_ = hub()
    with watch.held_wait(wait.caller, thread_held=False):
        try:
            listener = hub_.admit()
        except StreamRefused:
            raise watch.WaitRefused("this server holds as many listeners as it allows "
                                    "(EVENTS_STREAM_MAX_PER_PROCESS); try again shortly") from None
        try:
            deadline = time.monotonic() + wait.seconds
            while True:
                listener.woken = False
                events = await hub_.fetch_events(wait.visibility, wait.after, wait.limit)
                left = deadline - time.monotonic()
                if events or left <= 0:
                    return events
                await listener.wait(left)
        finally:
            hub_.leave(listener)


def answer_once(plan: Plan) -> str:
    """The stream as one finite answer (served without ASGI): the opening, a reset if
    due, the events after the cursor (one batch), and ``retry:`` one second."""
    oldest, latest = outbox_bounds()
    parts = ["retry: 1000\n"]
    if plan.after is None:
        parts.append(f": connected\nid: {latest or 0}\n\n")
        return "".join(parts)
    parts.append(": connected\n\n")
    cursor = plan.after
    if reset_needed(cursor, oldest, latest):
        cursor = latest or 0
        parts.append(reset_frame(cursor))
        return "".join(parts)
    batch = _events_after(plan.visibility, cursor)
    parts += [data.decode() for event, data in batch if plan.matches(event)]
    if batch and not plan.matches(batch[-1][0]):
        parts.append(f"id: {batch[-1][0].pk}\n\n")  # the cursor moved past filtered-out events
    return "".join(parts)


def reset_frame(cursor: int) -> str:
    return frame(cursor, "reset", {"cursor": cursor,
                                   "reason": "the cursor is older than the events the hub keeps; "
                                             "fetch everything again, then follow from this id"})


def reset_needed(cursor: int, oldest: int | None, latest: int | None) -> bool:
    """Whether a resuming listener's cursor can no longer be replayed: events right
    after it are gone (the outbox starts later), or it is ahead of the outbox (a
    restored database)."""
    if cursor <= 0:
        return False
    if latest is None or cursor > latest:
        return True
    return oldest is not None and oldest > cursor + 1
