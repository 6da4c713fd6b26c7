"""OFREP push (OpenFeature ADR-0008): ``GET /ofrep/v1/stream``, the server-sent events
that tell an OFREP provider to fetch its bulk evaluation again.

The bulk answer (``POST /ofrep/v1/evaluate/flags``, views/ofrep.py) names this
route in ``eventStreams`` with a ``token``: the caller's API key id, tenant,
environment and evaluation context, encrypted with the hub's Fernet keys (so the
context, a user's attributes, is never readable in a URL or an access log).
The token is as good as the key: checked at every connect (revoked, expired, no
``flags:read``: 401/403). A server-side client may instead send its usual
``Authorization`` and ``X-Environment``.

The stream is a listener of the change stream's hub (events.stream) whose plan is
the tenant's ``flag`` and ``segment`` events of that environment (or of none: a
flag's definition, a segment). Each batch of such events becomes ONE event::

    id: 57
    event: message
    data: {"etag":"\"4f1c...\"","lastModified":1771622898,"type":"refetchEvaluation"}

``etag`` is the ETag the bulk answer now has for the token's context (the
provider's ``If-None-Match``), when the token carries one; ``lastModified`` the
change's time (Unix seconds). Resume by ``Last-Event-ID`` as on the change stream;
a cursor too old to replay gets a ``refetchEvaluation`` too.
"""
from __future__ import annotations

from dataclasses import dataclass

import orjson
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import authentication, exceptions
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.principal import Principal, PrincipalUser
from core.api.tenancy import request_tenant
from core.errors import NotFound, ValidationFailed
from core.fields import SecretDecryptionError, decrypt_json
from events import stream
from events.api import docs as event_docs
from events.api.stream import JsonAnswers, asgi_stream, describe, gate_check, serve_stream, stream_cursor
from tenants.models import ApiKey, Tenant
from tenants.selectors import environment_get

from .ofrep import STREAM_TOKEN_SALT, bulk_etag

OFREP_EXAMPLE = (': connected\nid: 56\n\nid: 57\nevent: message\n'
                 'data: {"etag":"\\"4f1c0e\\"","lastModified":1771622898,"type":"refetchEvaluation"}\n\n')


class StreamTokenAuthentication(authentication.BaseAuthentication):
    """``?token=`` of an ``eventStreams`` URL: the API key it names, checked now."""

    def authenticate(self, request):
        raw = request.query_params.get("token")
        if not raw:
            return None
        try:
            data = decrypt_json(raw)
        except (SecretDecryptionError, ValueError, TypeError):
            data = None
        if not isinstance(data, dict) or data.get("s") != STREAM_TOKEN_SALT:
            raise exceptions.AuthenticationFailed("Invalid stream token: fetch the bulk evaluation again")
        key = ApiKey.objects.select_related("tenant", "environment").filter(pk=data.get("k")).first()
        now = timezone.now()
        if (key is None or key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now)
                or (key.tenant is not None and not key.tenant.is_active)):
            raise exceptions.AuthenticationFailed("The stream token's API key is revoked or expired")
        principal = Principal(kind="apikey", ident=str(key.pk), label=key.name, tenant_id=key.tenant_id,
                              scopes=frozenset(key.scopes), environment=key.environment.slug if key.environment_id else None)
        request._request.ofrep_token = data
        return PrincipalUser(principal), principal

    def authenticate_header(self, request) -> str:
        return 'ApiKey realm="config-hub"'


@dataclass(frozen=True)
class OfrepPlan:
    plan: stream.Plan
    tenant_id: int
    environment: str
    context: dict | None  # None: the events carry no etag


class OfrepStreamGate(APIView):
    """The checks of the OFREP stream (DRF: the token or the API's credentials,
    ``flags:read``, strict query); its answer is the listener's plan."""

    authentication_classes = [StreamTokenAuthentication, *APIView.authentication_classes]
    read_scope = "flags:read"
    query_parameters = frozenset({"token"})
    content_negotiation_class = JsonAnswers

    @extend_schema(
        operation_id="ofrep_v1_stream",
        summary="OFREP push: refetchEvaluation events (OpenFeature ADR-0008)",
        description="The stream the bulk answer's eventStreams names. Each batch of the tenant's flag or segment "
                    "changes in the environment is one `event: message` whose data is "
                    '`{"type":"refetchEvaluation","etag":...,"lastModified":...}`. docs/events.md, OFREP push.',
        parameters=[OpenApiParameter("X-Environment", str, OpenApiParameter.HEADER, required=False,
                                     description="with Authorization instead of the token: the environment"),
                    event_docs.LAST_EVENT_ID],
        responses=event_docs.event_stream("text/event-stream, open until the client closes it", OFREP_EXAMPLE),
    )
    def get(self, request):
        principal = request.auth
        token = getattr(request._request, "ofrep_token", None)
        if token is not None:
            tenant_id, environment, context = token["t"], token["e"], token["c"]
            if principal.tenant_id not in (None, tenant_id):
                raise NotFound("tenant not found")
        else:
            tenant_id = request_tenant(request).pk
            environment = request.META.get("HTTP_X_ENVIRONMENT") or principal.environment
            context = None
            if not environment:
                raise ValidationFailed("no environment: send X-Environment, or use an API key with an environment",
                                       details={"X-Environment": ["required"]})
        environment_get(slug=environment)  # 404 for an environment that is gone
        plan = stream.Plan(tenant_id=tenant_id, all_tenants=False, tenant_filter=None, after=stream_cursor(request),
                           resource_types=("flag", "segment"), environment=environment, environment_wide=True)
        return Response(OfrepPlan(plan=plan, tenant_id=tenant_id, environment=environment, context=context))


def _bulk_etag(tenant_id: int, environment: str, context: dict) -> str | None:
    tenant = Tenant.objects.filter(pk=tenant_id, is_active=True).first()
    return None if tenant is None else bulk_etag(tenant=tenant, environment=environment, context=context)


def refetch_frame(event_id: int, *, etag: str | None = None, last_modified: int | None = None) -> str:
    data: dict = {"type": "refetchEvaluation"}
    if etag:
        data["etag"] = etag
    if last_modified is not None:
        data["lastModified"] = last_modified
    return stream.frame(event_id, "message", data)


class OfrepStreamBody(stream.StreamBody):
    """The change stream's listener, sending one ``refetchEvaluation`` per batch of changes."""

    def __init__(self, hub: stream.Hub, ofrep: OfrepPlan):
        super().__init__(hub, ofrep.plan)
        self.ofrep = ofrep

    async def _etag(self, cursor: int) -> str | None:
        ofrep = self.ofrep
        if ofrep.context is None:
            return None
        key = ("ofrep-etag", ofrep.tenant_id, ofrep.environment, orjson.dumps(ofrep.context, option=orjson.OPT_SORT_KEYS),
               cursor)
        return await self.hub.shared(key, _bulk_etag, ofrep.tenant_id, ofrep.environment, ofrep.context)

    async def render(self, matched) -> bytes:
        last = matched[-1][0]
        return refetch_frame(last.pk, etag=await self._etag(last.pk),
                             last_modified=int(last.created_at.timestamp())).encode()

    async def reset(self, cursor: int) -> bytes:
        return refetch_frame(cursor, etag=await self._etag(cursor)).encode()


def answer_once(ofrep: OfrepPlan) -> str:
    """Served without ASGI: the cursor and ``retry:`` (a provider fetches the bulk
    evaluation again after every reconnect, so a poll loses nothing)."""
    latest = stream.latest_event_id()
    return f"retry: 1000\n: connected\nid: {latest or 0}\n\n"


_check = gate_check(OfrepStreamGate)


async def ofrep_stream_view(request):
    return await serve_stream(request, _check, OfrepStreamBody, answer_once)


def ofrep_stream_app(cors):
    """``GET /ofrep/v1/stream`` as a plain ASGI application (events.api.stream.asgi_stream)."""
    return asgi_stream(_check, OfrepStreamBody, cors)


describe(ofrep_stream_view, OfrepStreamGate)
