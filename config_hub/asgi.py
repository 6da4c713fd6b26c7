"""ASGI entry point: the whole hub on one base URL (``gunicorn -c config_hub/gunicorn.conf.py
config_hub.asgi:application`` with uvicorn workers, or ``uvicorn config_hub.asgi:application``).

Two doors in one process (docs/operations.md, "How the hub is served"):
- the streams' GETs (``/api/v1/stream``, ``/ofrep/v1/stream``) are plain ASGI
  applications (events.api.stream.asgi_stream: the same DRF gate, then the events
  written straight to ``send``); the long poll's waits (``/api/v1/events/?wait=``)
  and the streams' other methods are Django's ASGI handler with their own URLconf
  (config_hub.async_urls): async views, each listener a coroutine, no thread held;
  what they send goes through a bounded buffer per connection (:class:`BoundedSend`);
- every other route is the WSGI application run on a pool of ``GUNICORN_THREADS``
  threads (a2wsgi), exactly as gunicorn's gthread workers ran it: the synchronous
  API keeps its persistent database connections per thread (Django's ASGI handler
  would open one per request) and its measured speed.
"""
import asyncio
import contextvars
import functools
import logging
import os
from collections import deque
from urllib.parse import parse_qsl

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config_hub.settings.base")

import django  # noqa: E402
from a2wsgi import WSGIMiddleware  # noqa: E402
from a2wsgi.wsgi import Body, build_environ  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

django.setup(set_prefix=False)

# The middleware of the async routes: only natively async ones. Django runs any
# other middleware in a thread of the request's own executor, which would then
# live as long as the stream: one idle thread per listener. The stream needs
# none of the others (no session, CSRF, login or HTML; its view sets its headers
# and the DRF gate answers its errors, database ones included).
ASYNC_MIDDLEWARE = ("corsheaders.middleware.CorsMiddleware",)


class AsyncRoutesHandler(ASGIHandler):
    """Django's ASGI handler with :data:`ASYNC_MIDDLEWARE` only, and without a thread
    of its own per request: Django opens a per-request executor (a thread, for the
    request's signals) that would live as long as the stream; here those short
    calls share asgiref's one thread. The stream's database work runs on its hub's
    threads (events.stream)."""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"only HTTP is served here, not {scope['type']}")
        bounded = BoundedSend(send, settings.EVENTS_STREAM_BUFFER, settings.EVENTS_STREAM_KEEPALIVE)
        try:
            await self.handle(scope, receive, bounded)
        finally:
            bounded.stop()

    def create_request(self, scope, body_file):
        request, error = super().create_request(scope, body_file)
        if request is not None:
            request.urlconf = "config_hub.async_urls"
        return request, error

    def load_middleware(self, is_async=False):
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = [name for name in full if name in ASYNC_MIDDLEWARE]
        try:
            super().load_middleware(is_async=is_async)
        finally:
            settings.MIDDLEWARE = full


logger = logging.getLogger("events.stream")


class BoundedSend:
    """The ``send`` of one connection of the async door, through a buffer of at most
    ``limit`` bytes (``EVENTS_STREAM_BUFFER``): a writer task forwards what the view
    sends, so the view never waits on the network while there is room. When the
    buffer is full the view waits for room, at most ``grace`` seconds
    (``EVENTS_STREAM_KEEPALIVE``: a listener that has not taken a byte for that long
    is not reading); then the connection is closed at once (the transport aborted,
    so the view sees a disconnect and leaves the hub) and the listener resumes by
    its Last-Event-ID. A slow listener thus holds up only its own coroutine, for a
    bounded time, with bounded memory (``limit`` plus the transport's 64 KiB)."""

    def __init__(self, send, limit: int, grace: float):
        self.send = send
        self.limit = limit
        self.grace = grace
        self.queue: deque = deque()
        self.size = 0
        self.ready = asyncio.Event()
        self.room = asyncio.Event()
        self.writer: asyncio.Task | None = None
        self.closed = False
        # uvicorn's flow control of the connection: while its transport takes writes
        # (not paused), uvicorn's send returns without waiting, so it is called
        # directly (no hop through the writer task) when nothing is queued.
        self.flow = getattr(getattr(send, "__self__", None), "flow", None)

    async def __call__(self, message) -> None:
        if self.closed:
            return
        if message["type"] != "http.response.body":
            await self.send(message)
            return
        if not self.queue and self.flow is not None and not self.flow.write_paused:
            await self.send(message)
            return
        size = len(message.get("body", b""))
        if self.size and self.size + size > self.limit:
            try:
                await asyncio.wait_for(self._room_for(size), self.grace)
            except TimeoutError:
                self._close()
                return
        self.queue.append(message)
        self.size += size
        if self.writer is None:
            self.writer = asyncio.get_running_loop().create_task(self._write())
        self.ready.set()
        if not message.get("more_body", False):
            await asyncio.shield(self.writer)  # the end of the answer: written before the view returns

    async def _room_for(self, size: int) -> None:
        while self.size and self.size + size > self.limit:
            self.room.clear()
            await self.room.wait()

    async def _write(self) -> None:
        while True:
            while self.queue:
                message = self.queue[0]
                await self.send(message)
                self.queue.popleft()
                self.size -= len(message.get("body", b""))
                self.room.set()
                if not message.get("more_body", False):
                    return
            self.ready.clear()
            await self.ready.wait()

    def stop(self) -> None:
        """The view returned (or was cancelled: the client left): the writer goes too."""
        if self.writer is not None and not self.writer.done():
            self.writer.cancel()

    def _close(self) -> None:
        self.closed = True
        self.queue.clear()
        if self.writer is not None:
            self.writer.cancel()
        # uvicorn's send is a method of the request's cycle, which holds the connection's
        # transport: aborting it ends the connection now (close() would wait to flush
        # to a client that does not read) and tells the view the client is gone.
        transport = getattr(getattr(self.send, "__self__", None), "transport", None)
        logger.info("stream: a listener took nothing for %.0f s with its buffer full (%d bytes); closing it",
                    self.grace, self.limit)
        if transport is not None:
            transport.abort()


async def _no_response(request):  # (the CORS middleware below only adds headers)
    return None


def _stream_apps() -> dict:
    from corsheaders.middleware import CorsMiddleware

    from events.api.stream import stream_app
    from flags.api.views.ofrep_stream import ofrep_stream_app

    cors = CorsMiddleware(_no_response)
    return {"/api/v1/stream": stream_app(cors), "/ofrep/v1/stream": ofrep_stream_app(cors)}


# GET and HEAD of the streams: plain ASGI applications in front of Django's handler
# (events.api.stream.asgi_stream: the same DRF checks in one hop to a hub thread,
# then the events written straight to ``send``); the other methods: Django's handler.
STREAM_APPS = _stream_apps()
django_asgi = AsyncRoutesHandler()


# A request body up to this size is read on the event loop before the request goes
# to its thread (see ThreadedWSGI).
BODY_READ_AHEAD = 64 * 1024


class _ReadBody(Body):
    """``wsgi.input`` over a body read already: no hop back to the event loop."""

    def __init__(self, loop, data: bytes):
        super().__init__(loop, None)
        self.buffer.extend(data)
        self._has_more = False


class _Responder:
    """One request of the WSGI application on a thread of the pool, its answer handed
    to the event loop with as few round trips as the answer allows.

    a2wsgi's responder sends each message from the request's thread and waits for
    the loop to take it: the status and headers, the body, then an empty last body,
    three round trips through the loop (a future, a wake-up of the loop, a wake-up of
    the thread) for every answer. Here the status and the last chunk of the body
    are returned with the thread's own completion, the one hop every request makes
    anyway: an answer of one chunk (every ``HttpResponse``) costs no round trip of
    its own. Only a streamed answer's earlier chunks are sent from the thread as they
    come, each waiting for room in a queue of ``QUEUE`` messages, as a2wsgi does."""

    QUEUE = 8

    def __init__(self, app, executor, loop):
        self.app = app
        self.executor = executor
        self.loop = loop
        self.queue: asyncio.Queue = asyncio.Queue(self.QUEUE)
        self.start: dict | None = None
        self.started = False

    async def respond(self, scope, body: Body, send) -> None:
        environ = build_environ(scope, body)
        sender = self.loop.create_task(self._sender(send))
        try:
            run = functools.partial(contextvars.copy_context().run, self._run, environ)
            for message in await self.loop.run_in_executor(self.executor, run):
                await self.queue.put(message)
            await self.queue.put(None)
            await sender
        finally:
            if not sender.done():
                sender.cancel()

    async def _sender(self, send) -> None:
        # A send that fails (an answer longer than its Content-Length, a header
        # uvicorn refuses) ends the answer, but the queue is still drained: a
        # streaming thread waiting for room would otherwise wait for ever.
        failed = None
        while (message := await self.queue.get()) is not None:
            if failed is None:
                try:
                    await send(message)
                except Exception as exc:  # noqa: BLE001 - raised below, once the thread is done
                    failed = exc
        if failed is not None:
            raise failed

    def _run(self, environ) -> list[dict]:
        """The application, on the thread; returns the messages not sent yet."""
        iterable = self.app(environ, self._start_response)
        try:
            held = None
            for chunk in iterable:
                if held is not None:
                    self._send_now(held)
                held = chunk
            return [*self._head(), {"type": "http.response.body", "body": held or b"", "more_body": False}]
        finally:
            getattr(iterable, "close", lambda: None)()

    def _head(self) -> list[dict]:
        if self.started:
            return []
        if self.start is None:
            raise RuntimeError("the WSGI application returned without calling start_response")
        self.started = True
        return [self.start]

    def _send_now(self, chunk: bytes) -> None:
        for message in [*self._head(), {"type": "http.response.body", "body": chunk, "more_body": True}]:
            asyncio.run_coroutine_threadsafe(self.queue.put(message), self.loop).result()

    def _start_response(self, status: str, headers, exc_info=None):
        if exc_info is not None and self.started:
            raise exc_info[1].with_traceback(exc_info[2])
        code = int(status.split(" ", 1)[0])
        self.start = {"type": "http.response.start", "status": code,
                      "headers": [(name.strip().encode("latin1").lower(), value.strip().encode("latin1"))
                                  for name, value in headers]}
        return self._send_now  # WSGI's write(): sent at once


class ThreadedWSGI(WSGIMiddleware):
    """The WSGI application on a pool of threads (a2wsgi's pool, environ and
    ``wsgi.input``; :class:`_Responder` answers). A small request body (a
    ``Content-Length`` up to :data:`BODY_READ_AHEAD`: the JSON of an evaluate, a
    heartbeat, a config write) is read on the event loop first: a2wsgi reads it
    from the request's thread, one round trip through the loop per read: 0.1 ms of
    CPU per POST, a fifth of a lean route's whole cost, and a client that sends its
    body slowly would hold a thread. A chunked body (no ``Content-Length``) is read
    the same way and handed to Django with the length read (Django reads
    ``Content-Length`` bytes, so it would see none); one larger than
    :data:`BODY_READ_AHEAD` is answered 411. Larger bodies with a length are read
    from the thread, as a2wsgi reads them."""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        loop = asyncio.get_running_loop()
        body = None
        if scope["method"] not in ("GET", "HEAD"):
            length = _body_length(scope)
            if length is CHUNKED or (length is not None and length <= BODY_READ_AHEAD):
                data = bytearray()
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        return  # the client left before sending its body
                    data += message.get("body", b"")
                    if not message.get("more_body", False) or len(data) > BODY_READ_AHEAD:
                        break
                if len(data) <= BODY_READ_AHEAD:
                    body = _ReadBody(loop, bytes(data))
                    if length is CHUNKED:
                        headers = [(n, v) for n, v in scope["headers"] if n != b"transfer-encoding"]
                        scope = dict(scope, headers=[*headers, (b"content-length", str(len(data)).encode())])
                elif length is CHUNKED:
                    return await _length_required(send)
                else:  # more than it announced: the rest as a2wsgi reads it
                    body = Body(loop, receive)
                    body.buffer.extend(data)
        await _Responder(self.app, self.executor, loop).respond(scope, body or Body(loop, receive), send)


CHUNKED = object()


def _body_length(scope) -> int | object | None:
    """The request's Content-Length; :data:`CHUNKED` for a body sent in chunks; None
    for neither (or a length that is not a number: Django answers that)."""
    length = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return None
        elif name == b"transfer-encoding":
            return CHUNKED
    return length


async def _length_required(send) -> None:
    body = (b'{"error":{"code":"length_required","message":"a body larger than %d bytes needs a '
            b'Content-Length","details":null}}' % BODY_READ_AHEAD)
    await send({"type": "http.response.start", "status": 411,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


django_wsgi = ThreadedWSGI(get_wsgi_application(), workers=int(os.environ.get("GUNICORN_THREADS", "16")))

# The routes served by async views (an exact path: the stream takes no suffix).
ASYNC_PATHS = frozenset({"/api/v1/stream", "/ofrep/v1/stream"})
LONG_POLL_PATH = "/api/v1/events/"


def waits(query_string: bytes) -> bool:
    """Whether a request of the long poll asks to wait (``wait`` other than empty or 0)."""
    if b"wait" not in query_string:
        return False
    value = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)).get("wait", "")
    return value.strip() not in ("", "0")


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http" and scope["path"] in STREAM_APPS and scope["method"] in ("GET", "HEAD"):
        bounded = BoundedSend(send, settings.EVENTS_STREAM_BUFFER, settings.EVENTS_STREAM_KEEPALIVE)
        try:
            return await STREAM_APPS[scope["path"]](scope, receive, bounded)
        finally:
            bounded.stop()
    if scope["type"] == "http" and (scope["path"] in ASYNC_PATHS or (
            scope["path"] == LONG_POLL_PATH and waits(scope["query_string"]))):
        return await django_asgi(scope, receive, send)
    return await django_wsgi(scope, receive, send)
