"""``GET /api/v1/stream``: the change stream (server-sent events), an async view under ASGI.

Everything that can refuse a request runs before the stream starts, in DRF's
own machinery (:class:`StreamGate`: the API's authentication classes, the
``events:read`` scope, throttles, strict query parameters, the long poll's
tenant rules), on one of the hub's threads: a bad key is the API's 401 JSON, a
missing scope its 403 JSON, an unknown parameter its 400. Then the listener cap
(503 with Retry-After), then ``text/event-stream`` (events.stream).
"""
from __future__ import annotations

import asyncio
import io
import logging

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.exception import response_for_exception
from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.strict import int_param
from core.api.tenancy import request_tenant
from core.errors import ValidationFailed, error_body
from core.middleware import dependency_down_response

from .. import services, stream, watch
from ..messages import event_payload
from . import docs
from .views import EventListView

logger = logging.getLogger(__name__)


class JsonAnswers(BaseContentNegotiation):
    """The gate's answers are JSON errors, whatever the client accepts (``text/event-stream``)."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def stream_cursor(request) -> int | None:
    """``Last-Event-ID`` (what an EventSource sends when it reconnects) wins over
    ``?after=``; neither: None (from the latest event on)."""
    raw = request.META.get("HTTP_LAST_EVENT_ID", "").strip()
    if not raw:
        if request.query_params.get("after", "") == "":
            return None
        return int_param(request, "after", 0)
    if not raw.isdigit():
        raise ValidationFailed("Last-Event-ID must be an event id (an integer of at least 0)",
                               details={"Last-Event-ID": ["must be an integer"]})
    return int(raw)


class StreamGate(APIView):
    """The checks of the stream, as a DRF view whose answer is the listener's plan."""

    read_scope = "events:read"
    query_parameters = frozenset({"after", "types", "environment", "service", "key_prefix", "tenant"})
    content_negotiation_class = JsonAnswers

    @extend_schema(
        operation_id="api_v1_stream",
        summary="The change stream (server-sent events)",
        description="Every change the caller may see, as server-sent events: `id` = the outbox event id, "
                    "`event` = its type, `data` = the webhook body. Replay with Last-Event-ID or ?after=; "
                    "a `reset` event when the cursor is older than the outbox keeps. docs/events.md, Stream.",
        parameters=[
            OpenApiParameter("after", int, description="resume after this event id (no cursor: from now on)"),
            OpenApiParameter("types", str, description="resource types, comma-separated (config,flag,...)"),
            OpenApiParameter("environment", str, description="only this environment's events"),
            OpenApiParameter("service", str, description="only this service's events"),
            OpenApiParameter("key_prefix", str, description="only keys starting with this"),
            OpenApiParameter("tenant", str, description="a platform caller: one tenant (or X-Tenant-ID)"),
            docs.LAST_EVENT_ID,
        ],
        responses=docs.event_stream("text/event-stream, open until the client closes it", docs.STREAM_EXAMPLE),
    )
    def get(self, request):
        principal = request.auth
        after = stream_cursor(request)
        tenant_filter = None
        if principal.all_tenants and (request.query_params.get("tenant") or request.META.get("HTTP_X_TENANT_ID")):
            tenant_filter = request_tenant(request, request.query_params.get("tenant")).pk
        elif not principal.all_tenants:
            request_tenant(request)
        types = [t.strip() for t in request.query_params.get("types", "").split(",") if t.strip()]
        environment = request.query_params.get("environment", "").strip()
        problems = services.webhook_filter_problems(resource_types=types, environment=environment)
        if problems:
            details = {"types" if name == "resource_types" else name: value for name, value in problems.items()}
            raise ValidationFailed("Invalid stream filter", details=details)
        plan = stream.Plan(tenant_id=principal.tenant_id, all_tenants=principal.all_tenants, tenant_filter=tenant_filter,
                           after=after, resource_types=tuple(types), environment=environment,
                           service_name=request.query_params.get("service", "").strip(),
                           key_prefix=request.query_params.get("key_prefix", ""))
        return Response(plan)


def gate_check(gate_class: type[APIView]):
    """The function that runs ``gate_class`` (a DRF view whose answer is the listener's
    plan) on a request: its answer, rendered unless it is the plan."""
    gate = gate_class.as_view()

    def check(request):
        response = gate(request)
        if response.status_code != 200:
            response.render()
        return response

    return check


async def serve_stream(request, check, body_class, answer_once):
    """A stream route in Django's handler. Under a WSGI server (``manage.py runserver``,
    the test client) a response cannot stay open without holding a thread: the
    checks, then ``answer_once(plan)`` (what is there after the cursor) and the end,
    with ``retry:`` so an EventSource comes back in a second: a poll. The Procfile's
    server and ``make run`` serve the real stream (:func:`asgi_stream`); under ASGI
    only the methods other than GET and HEAD come here: the checks' answer (405,
    OPTIONS)."""
    checked = await sync_to_async(check)(request)
    if checked.status_code != 200:
        return checked
    if isinstance(request, ASGIRequest):
        checked.data = {}
        return checked.render()
    text = await sync_to_async(answer_once)(checked.data)
    return _event_stream_response(HttpResponse(text))


def _check_and_bounds(check, cors, request):
    """On a hub thread, in one hop: the checks (the response: refusal or plan) and, when
    they pass, the outbox's bounds and the stream's response headers (CORS included)."""
    try:
        checked = check(request)
    except Exception as exc:  # noqa: BLE001 - what Django's handler answers for it
        checked = response_for_exception(request, exc)
    if checked.status_code != 200:
        return checked, None, cors_headers(cors, request, checked)
    oldest, latest = stream.outbox_bounds()
    if "HTTP_ORIGIN" in request.META:
        headers = cors_headers(cors, request, _event_stream_response(HttpResponse()))
    else:  # the same for every request of the route without an Origin (a service, not a browser)
        headers = _plain_headers.get(request.path)
        if headers is None:
            headers = _plain_headers[request.path] = cors_headers(cors, request, _event_stream_response(HttpResponse()))
    return checked, (oldest, latest), headers


_plain_headers: dict[str, list] = {}


def cors_headers(cors, request, response) -> list[tuple[bytes, bytes]]:
    """``response`` as ASGI headers, with what the CORS middleware adds (as on every route)."""
    cors.add_response_headers(request, response)
    headers = [(name.encode("ascii"), value.encode("latin-1")) for name, value in response.items()]
    headers += [(b"Set-Cookie", c.output(header="").encode("ascii").strip()) for c in response.cookies.values()]
    return headers


async def _send_response(send, response, headers) -> None:
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.content})


def asgi_stream(check, body_class, cors):
    """A stream route as a plain ASGI application (GET and HEAD; config_hub/asgi.py
    routes them here, in front of Django's handler): the request is Django's
    ``ASGIRequest``; ``check`` (the route's DRF gate: authentication, scope, throttles,
    strict query) and the outbox's bounds in ONE hop to a hub thread; then the listener
    cap (503 with Retry-After), then ``text/event-stream`` written straight to
    ``send``. A ``http.disconnect`` ends the listener."""

    async def app(scope, receive, send):
        message = await receive()  # the request (a GET: no body)
        if message["type"] == "http.disconnect":
            return
        request = ASGIRequest(scope, io.BytesIO())
        hub = stream.hub()
        generation = hub.generation if hub.watching() else None
        checked, bounds, headers = await hub.run_sync(_check_and_bounds, check, cors, request)
        if bounds is None:
            return await _send_response(send, checked, headers)
        try:
            body = body_class(hub, checked.data)
        except stream.StreamRefused as refused:
            response = JsonResponse(error_body(refused.code, str(refused)), status=refused.status,
                                    headers={"Retry-After": str(refused.retry_after)})
            return await _send_response(send, response, cors_headers(cors, request, response))
        current = asyncio.current_task()
        left = asyncio.get_running_loop().create_task(_disconnected(receive, current))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})

            async def write(data: bytes) -> None:
                await send({"type": "http.response.body", "body": data, "more_body": True})

            await body.serve(write, *bounds, missed=generation is None or generation != hub.generation)
        except asyncio.CancelledError:
            if not left.done():
                raise
            current.uncancel()  # the client left: the listener's end, not the server's
        finally:
            left.cancel()
            body.close()

    return app


async def _disconnected(receive, task: asyncio.Task) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    task.cancel()


_check = gate_check(StreamGate)


async def stream_view(request):
    return await serve_stream(request, _check, stream.StreamBody, stream.answer_once)


def stream_app(cors):
    """``GET /api/v1/stream`` as a plain ASGI application (:func:`asgi_stream`)."""
    return asgi_stream(_check, stream.StreamBody, cors)


def describe(view, gate_class: type[APIView]) -> None:
    """Show a stream route's checks to whoever inspects routes: the authorization
    matrix (``view_class``) and the OpenAPI schema (``cls``, as DRF's ``as_view``)."""
    view.view_class = view.cls = gate_class
    view.initkwargs = {}


describe(stream_view, StreamGate)


def _event_stream_response(response):
    response["Content-Type"] = "text/event-stream"
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    response["X-Content-Type-Options"] = "nosniff"  # (the async routes skip SecurityMiddleware: config_hub/asgi.py)
    return response


# --- the long poll under ASGI -------------------------------------------------------

_event_list = EventListView.as_view()


def _check_wait(request):
    request.hub_waits = True
    response = _event_list(request)
    if not isinstance(response.data, stream.Wait):
        response.render()
    return response


async def long_poll_view(request):
    """``GET /api/v1/events/?wait=`` served under ASGI (config_hub/asgi.py routes a
    request with ``wait`` here): the same DRF view checks it and answers at once
    when it can; a wait is then a listener of the hub (``stream.wait_for_events``),
    holding no thread. Same JSON, same limits' answers (429 per caller, 503 per process)."""
    hub = stream.hub()
    checked = await hub.run_sync(_check_wait, request)
    wait = getattr(checked, "data", None)
    if not isinstance(wait, stream.Wait):
        return checked
    try:
        events = await stream.wait_for_events(wait)
    except watch.WaitRefused as exc:
        return JsonResponse(error_body(exc.code, exc.message), status=exc.status,
                            headers={"Retry-After": str(exc.retry_after)})
    except DatabaseError:  # the database went away during the wait (the async door has no middleware for it)
        logger.warning("long poll: database unavailable during a wait")
        return dependency_down_response("the database")
    cursor = events[-1].pk if events else wait.after
    checked.data = {"events": [event_payload(e) for e in events], "cursor": cursor}  # the view's own renderer
    return checked.render()


long_poll_view.view_class = EventListView
