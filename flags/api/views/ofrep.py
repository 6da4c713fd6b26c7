"""OpenFeature's Remote Evaluation Protocol (OFREP): ``/ofrep/v1/evaluate/flags[/{key}]``."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.conditional import etag_for, not_modified
from core.api.strict import unknown_names
from core.api.tenancy import request_tenant
from core.errors import NotFound
from core.fields import encrypt_json
from flags import selectors
from flags.api import docs
from flags.engine import Evaluation
from tenants.models import Tenant
from tenants.selectors import environment_get

from .evaluate import payload_value

_OFREP_REASONS = {"STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "DEFAULT"}
_UNLEASH_FIELDS = {"sessionId", "remoteAddress", "currentTime", "environment", "appName", "userId"}
_OFREP_BODY = frozenset({"context"})


def _ofrep_error(key: str | None, code: str, details: str, status_code: int) -> Response:
    body = {"errorCode": code, "errorDetails": details}
    if key is not None:
        body = {"key": key, **body}
    return Response(body, status=status_code)


def _ofrep_context(request) -> tuple[dict, str | None]:
    body = request.data if isinstance(request.data, dict) else None
    if body is None:
        raise ValueError("the body must be a JSON object")
    unknown = unknown_names(body, _OFREP_BODY)  # OFREP's request is {"context": {...}}; the context is open
    if unknown:
        raise ValueError(f"unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
    raw = body.get("context") or {}
    if not isinstance(raw, dict):
        raise ValueError("context must be an object")
    ctx: dict[str, Any] = {}
    props: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "targetingKey":
            ctx["userId"] = value
        elif name in _UNLEASH_FIELDS:
            ctx[name] = value
        elif name == "properties" and isinstance(value, dict):
            props.update(value)
        else:
            props[name] = value
    if props:
        ctx["properties"] = props
    env = request.META.get("HTTP_X_ENVIRONMENT") or raw.get("environment") or request.auth.environment
    return ctx, env


def ofrep_out(key: str, result: Evaluation) -> dict[str, Any]:
    variant = result.variant
    has_variant = bool(variant.get("enabled"))
    reason = result.reason if result.reason in _OFREP_REASONS else "DEFAULT"
    return {
        "key": key,
        "value": payload_value(variant.get("payload")) if has_variant and variant.get("payload") else result.enabled,
        "reason": reason,
        "variant": variant["name"] if has_variant else None,
        "metadata": {},
    }


def _ofrep_bulk_shape(results: dict[str, Evaluation], environment: str) -> tuple[dict[str, Any], str]:
    """OFREP bulk's body and its ETag, computed once per reused answer."""
    body = {"flags": [ofrep_out(name, r) for name, r in results.items()]}
    return body, etag_for(body)


def bulk_etag(*, tenant: Tenant, environment: str, context: dict) -> str:
    """The ETag the bulk answer has now for ``context`` (the OFREP stream's events)."""
    _body, etag = selectors.flags_evaluate_all_shaped(tenant=tenant, environment=environment, context=context,
                                                     shape=_ofrep_bulk_shape, count_usage=False)
    return etag


# A context larger than this is not put into a stream token (the URL stays short):
# that stream's events then carry no etag.
CONTEXT_MAX_BYTES = 2048
STREAM_TOKEN_SALT = "ofrep-stream"


def event_streams(request, *, tenant: Tenant, environment: str, context: dict) -> list[dict] | None:
    """The bulk answer's ``eventStreams`` (OpenFeature ADR-0008) for this caller: the
    hub's OFREP stream (views/ofrep_stream.py) with a token naming the caller's API
    key, the tenant, the environment and the context, encrypted with the hub's
    Fernet keys (a context holds a user's attributes: never readable in a URL or a
    log). None for a caller that is not an API key, or with OFREP_EVENT_STREAMS off."""
    principal = request.auth
    if not settings.OFREP_EVENT_STREAMS or principal is None or principal.kind != "apikey":
        return None
    fits = len(orjson.dumps(context)) <= CONTEXT_MAX_BYTES
    token = encrypt_json({"s": STREAM_TOKEN_SALT, "k": int(principal.ident), "t": tenant.pk, "e": environment,
                          "c": context if fits else None})
    url = request.build_absolute_uri(reverse("ofrep-stream")) + "?" + urlencode({"token": token})
    return [{"type": "sse", "url": url, "inactivityDelaySec": settings.OFREP_STREAM_INACTIVITY_DELAY}]


def _ofrep_request(request, key: str | None):
    """(context, environment, None), or (None, None, the INVALID_CONTEXT answer)."""
    try:
        ctx, env = _ofrep_context(request)
    except ValueError as exc:
        return None, None, _ofrep_error(key, "INVALID_CONTEXT", str(exc), 400)
    if not env:
        return None, None, _ofrep_error(
            key, "INVALID_CONTEXT", "no environment: send X-Environment, context.environment, or use an API key with an environment", 400)
    try:
        environment_get(slug=env)
    except NotFound:
        return None, None, _ofrep_error(key, "INVALID_CONTEXT", f"environment '{env}' does not exist", 400)
    return ctx, env, None


class OfrepSingleView(APIView):
    """``POST /ofrep/v1/evaluate/flags/{key}`` (OpenFeature Remote Evaluation Protocol)."""

    required_scopes = {"POST": "flags:read"}

    @extend_schema(
        request=docs.OfrepRequestSerializer,
        responses={
            200: docs.OfrepEvaluationSerializer,
            400: docs.ofrep_error(400, "INVALID_CONTEXT (OFREP's body), or a malformed request (the common error body)"),
            404: docs.ofrep_error(404, "FLAG_NOT_FOUND (OFREP's body), or a tenant not found (the common error body)"),
        },
    )
    def post(self, request, key: str):
        ctx, env, refused = _ofrep_request(request, key)
        if refused is not None:
            return refused
        tenant = request_tenant(request)
        result = selectors.flag_evaluate(tenant=tenant, environment=env, name=key, context=ctx)
        if result.reason == "FLAG_NOT_FOUND":
            return _ofrep_error(key, "FLAG_NOT_FOUND", f"flag '{key}' was not found", 404)
        return Response(ofrep_out(key, result))


class OfrepBulkView(APIView):
    """``POST /ofrep/v1/evaluate/flags``: every flag of the environment; ETag and 304;
    ``eventStreams`` names the OFREP stream (ADR-0008)."""

    required_scopes = {"POST": "flags:read"}
    # What a provider adds when a stream's event made it fetch again (ADR-0008): taken and
    # not needed (caches are dropped before a change's event is sent, so the answer is fresh).
    query_parameters = frozenset({"flagConfigEtag", "flagConfigLastModified"})

    @extend_schema(
        parameters=[OpenApiParameter("flagConfigEtag", str, description="ADR-0008: the etag of the stream's event "
                                     "that made the provider fetch again (accepted; the answer is always fresh)"),
                    OpenApiParameter("flagConfigLastModified", str, description="ADR-0008: the event's lastModified "
                                     "(accepted, as flagConfigEtag)")],
        request=docs.OfrepRequestSerializer,
        responses={
            **docs.conditional(docs.OfrepBulkSerializer),
            400: docs.ofrep_error(400, "INVALID_CONTEXT (OFREP's body), or a malformed request (the common error body)"),
        },
    )
    def post(self, request):
        ctx, env, refused = _ofrep_request(request, None)
        if refused is not None:
            return refused
        tenant = request_tenant(request)
        body, etag = selectors.flags_evaluate_all_shaped(tenant=tenant, environment=env, context=ctx, shape=_ofrep_bulk_shape)
        if not_modified(request, etag):
            response = Response(status=304)
        else:
            streams = event_streams(request, tenant=tenant, environment=env, context=ctx)
            response = Response(body if streams is None else {**body, "eventStreams": streams})
        response["ETag"] = etag
        return response
