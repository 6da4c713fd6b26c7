"""Evaluation routes: ``evaluate`` (with its lean path) and ``evaluate-all``."""
from __future__ import annotations

import json
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.conditional import conditional_response, etag_for
from core.api.lean import json_response, lean_route, lean_tenant
from core.api.parsers import loads
from core.api.renderers import dumps
from core.api.strict import StrictSerializer
from core.api.tenancy import request_tenant
from core.errors import NotFound, ValidationFailed
from flags import selectors
from flags.api import docs
from flags.engine import Evaluation
from flags.usage import usage_record
from tenants.selectors import environment_get

from ..bodies import evaluate_all_body, evaluate_body


# The evaluate routes check their bodies with bodies.py (same rules and messages,
# a fraction of the cost); these two serializers document them in the schema.
class EvaluateSerializer(StrictSerializer):
    flag_name = serializers.CharField(max_length=200)
    environment = serializers.SlugField(required=False, allow_null=True)
    user_id = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=500)
    context = serializers.DictField(required=False, default=dict)


class EvaluateAllSerializer(StrictSerializer):
    environment = serializers.SlugField(required=False, allow_null=True)
    user_id = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=500)
    context = serializers.DictField(required=False, default=dict)


def _environment(request, body_env: str | None, principal=None) -> str:
    """The environment of an evaluation: the body's, else ``X-Environment``, else
    the API key's; it must exist."""
    principal = principal or request.auth
    slug = body_env or request.META.get("HTTP_X_ENVIRONMENT") or principal.environment
    if not slug:
        raise ValidationFailed("name an environment (body 'environment', X-Environment, or an API key with one)",
                               details={"environment": ["required"]})
    environment_get(slug=slug)
    return slug


def _context(data: dict) -> dict:
    ctx = dict(data.get("context") or {})
    if data.get("user_id") and not ctx.get("userId"):
        ctx["userId"] = data["user_id"]
    props = ctx.get("properties")
    if props is not None and not isinstance(props, dict):
        raise ValidationFailed("context.properties must be an object")
    return ctx


def payload_value(payload: dict | None) -> Any:
    """A variant payload's value in its type: json parsed, number as a number."""
    if not payload:
        return None
    kind, raw = payload.get("type"), payload.get("value")
    if kind == "json" and isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    if kind == "number" and isinstance(raw, str):
        try:
            number = float(raw)
            return int(number) if number.is_integer() else number
        except ValueError:
            return raw
    return raw


def evaluation_out(result: Evaluation) -> dict[str, Any]:
    variant = result.variant
    has_variant = bool(variant.get("enabled"))
    return {
        "flag_name": result.name,
        "enabled": result.enabled,
        "variant": variant,
        "payload": variant.get("payload"),
        "value": payload_value(variant.get("payload")) if has_variant else result.enabled,
        "reason": result.reason,
    }


class EvaluateView(APIView):
    """One flag for one user: ``{"flag_name", "environment", "user_id", "context"}``."""

    required_scopes = {"POST": "flags:read"}

    @extend_schema(request=EvaluateSerializer, responses={200: docs.EvaluationSerializer})
    def post(self, request):
        data = evaluate_body(request.data)
        tenant = request_tenant(request)
        env = _environment(request, data.get("environment"))
        result = selectors.flag_evaluate(tenant=tenant, environment=env, name=data["flag_name"], context=_context(data))
        if result.reason == "FLAG_NOT_FOUND":
            raise NotFound(f"flag '{data['flag_name']}' not found", code="flag_not_found")
        return Response(evaluation_out(result))


class EvaluateAllView(APIView):
    required_scopes = {"POST": "flags:read"}

    @extend_schema(request=EvaluateAllSerializer, responses={**docs.conditional(docs.EvaluateAllOutSerializer)})
    def post(self, request):
        data = evaluate_all_body(request.data)
        tenant = request_tenant(request)
        env = _environment(request, data.get("environment"))
        body, etag = selectors.flags_evaluate_all_shaped(
            tenant=tenant, environment=env, context=_context(data), shape=_evaluate_all_shape
        )
        return conditional_response(request, body, etag=etag)


def _evaluate_all_shape(results: dict[str, Evaluation], environment: str) -> tuple[dict[str, Any], str]:
    """evaluate-all's body and its ETag, computed once per reused answer."""
    body = {"environment": environment, "flags": {name: evaluation_out(r) for name, r in results.items()}}
    return body, etag_for(body)


# --- the lean route of the single-flag evaluate (core.api.lean) ---------------------------

_evaluate_view = EvaluateView.as_view()


@lean_route(_evaluate_view, method="POST", scope="flags:read", content_type="application/json")
def evaluate_route(request, principal, query):
    """``POST /api/v1/feature-flags/evaluate`` for the common case (see
    ``core.api.lean``): a JSON body that passes the same checks, an existing
    environment and flag. The same functions as EvaluateView; anything else is
    EvaluateView's. A request repeated byte for byte (body, ``X-Environment``, the
    key's environment) under the same flag generation gets the answer evaluated
    for it, when the evaluation is repeatable (no random rollout, no clock): no
    parsing, no checking, no evaluating again."""
    tenant = lean_tenant(request, principal)
    body = request.body
    # A large body is not kept as a key (the process's memory): it is evaluated each time.
    request_key = (body, request.META.get("HTTP_X_ENVIRONMENT"), principal.environment) if len(body) <= _KEY_MAX else None
    reused = None if request_key is None else selectors.flag_evaluation_reused(tenant=tenant, request_key=request_key)
    if reused is not None:
        slug, name, raw = reused

        def answer_again():
            usage_record(tenant_id=tenant.pk, environment=slug, names=(name,))
            return json_response(raw)

        return answer_again
    data = evaluate_body(loads(body))
    slug = _environment(request, data.get("environment"), principal)
    context = _context(data)

    def answer():
        # Evaluating records usage, so it runs after the throttle's count; a flag
        # that does not exist is known only here (EvaluateView answers the 404).
        raw = selectors.flag_evaluate_shaped(tenant=tenant, environment=slug, name=data["flag_name"], context=context,
                                             shape=_evaluate_shape, request_key=request_key)
        return None if raw is None else json_response(raw)

    return answer


_KEY_MAX = 4096


def _evaluate_shape(result: Evaluation) -> bytes:
    return dumps(evaluation_out(result))
