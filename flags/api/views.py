"""Flag routes (seed 001) and OpenFeature's Remote Evaluation Protocol (OFREP)."""
from __future__ import annotations

import functools

import json
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config_hub.api import docs
from config_hub.api.conditional import conditional_response, etag_for, expected_version, not_modified
from config_hub.api.lean import json_response, lean_principal
from config_hub.api.parsers import loads
from config_hub.api.strict import StrictSerializer, refuse_unknown, unknown_names, validated_body
from config_hub.api.tenancy import request_tenant, tenant_for_principal
from config_hub.api.throttling import admit
from config_hub.errors import DomainError, NotFound, ValidationFailed
from tenants.selectors import environment_get, environment_named

from .. import selectors, services
from ..engine import Evaluation
from ..models import Flag
from .bodies import evaluate_all_body, evaluate_body



class FlagCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    environment = serializers.SlugField(required=False, allow_null=True)
    is_enabled = serializers.BooleanField(required=False, default=False)
    rollout_percentage = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=100)
    strategies = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    kind = serializers.ChoiceField(choices=["boolean", "string", "number", "json"], required=False, default="boolean")
    variants = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True)
    dependencies = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True)


class FlagUpdateSerializer(StrictSerializer):
    environment = serializers.SlugField(required=False, allow_null=True)
    is_enabled = serializers.BooleanField(required=False, allow_null=True)
    rollout_percentage = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=100)
    strategies = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    kind = serializers.ChoiceField(choices=["boolean", "string", "number", "json"], required=False)
    variants = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True)
    dependencies = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True)
    version = serializers.IntegerField(required=False, min_value=0)


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


class FlagListCreateView(APIView):
    query_parameters = {"GET": frozenset({"environment"})}
    required_scopes = {"GET": "flags:read", "POST": "flags:write"}

    @extend_schema(parameters=[OpenApiParameter("environment", str)],
                   responses=docs.conditional(docs.FlagOutSerializer(many=True)))
    def get(self, request):
        tenant = request_tenant(request)
        env_slug = request.query_params.get("environment")
        env = environment_named(env_slug) if env_slug else None
        flags = Flag.objects.filter(tenant_id=tenant.pk).select_related("tenant", "default_environment").order_by("name")
        return conditional_response(request, [selectors.flag_out(f, environment=env) for f in flags])

    @extend_schema(request=FlagCreateSerializer, responses={201: docs.FlagOutSerializer, **docs.errors(409)})
    def post(self, request):
        data = validated_body(FlagCreateSerializer, request.data)
        tenant = request_tenant(request)
        env = environment_named(data["environment"]) if data.get("environment") else None
        flag = services.flag_create(
            tenant=tenant, name=data["name"], environment=env, is_enabled=data["is_enabled"],
            rollout_percentage=data.get("rollout_percentage"), strategies=data.get("strategies"),
            description=data["description"], kind=data["kind"], variants=data.get("variants"),
            dependencies=data.get("dependencies"), actor=request.auth.actor, user_id=request.auth.user_id,
        )
        flag = selectors.flag_for_tenant(tenant_id=tenant.pk, flag_id=flag.pk)
        return Response(selectors.flag_out(flag, environment=env), status=status.HTTP_201_CREATED)


class FlagDetailView(APIView):
    query_parameters = {"GET": frozenset({"environment"}), "PUT": frozenset({"environment"}), "PATCH": frozenset({"environment"})}
    required_scopes = {"GET": "flags:read", "PUT": "flags:write", "PATCH": "flags:write", "DELETE": "flags:write"}

    def _flag(self, request, flag_id: str) -> Flag:
        if not (str(flag_id).isascii() and str(flag_id).isdigit()):  # "³".isdigit() is True, int("³") fails
            raise NotFound("flag ids are integers")
        tenant = request_tenant(request)
        return selectors.flag_for_tenant(tenant_id=tenant.pk, flag_id=int(flag_id))

    @extend_schema(parameters=[OpenApiParameter("environment", str)], responses=docs.conditional(docs.FlagOutSerializer))
    def get(self, request, flag_id: str):
        env_slug = request.query_params.get("environment")
        env = environment_named(env_slug) if env_slug else None
        return conditional_response(request, selectors.flag_out(self._flag(request, flag_id), environment=env))

    @extend_schema(request=FlagUpdateSerializer, responses={200: docs.FlagOutSerializer, **docs.errors(412)})
    def put(self, request, flag_id: str):
        return self._update(request, flag_id)

    @extend_schema(request=FlagUpdateSerializer, responses={200: docs.FlagOutSerializer, **docs.errors(412)})
    def patch(self, request, flag_id: str):
        return self._update(request, flag_id)

    def _update(self, request, flag_id: str):
        flag = self._flag(request, flag_id)
        data = validated_body(FlagUpdateSerializer, request.data)
        env_slug = data.get("environment") or request.query_params.get("environment")
        env = environment_named(env_slug) if env_slug else None
        flag = services.flag_update(
            flag=flag, environment=env, is_enabled=data.get("is_enabled"),
            rollout_percentage=data.get("rollout_percentage"), strategies=data.get("strategies"),
            description=data.get("description"), variants=data.get("variants"), dependencies=data.get("dependencies"),
            kind=data.get("kind"), expected_version=expected_version(request, data.get("version")),
            actor=request.auth.actor, user_id=request.auth.user_id,
        )
        flag = selectors.flag_for_tenant(tenant_id=flag.tenant_id, flag_id=flag.pk)
        return Response(selectors.flag_out(flag, environment=env))

    @extend_schema(responses={204: docs.NO_CONTENT})
    def delete(self, request, flag_id: str):
        services.flag_delete(flag=self._flag(request, flag_id), actor=request.auth.actor, user_id=request.auth.user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EvaluateView(APIView):
    """Seed 001's ``is_feature_enabled``: ``{"flag_name", "environment", "user_id", "context"}``."""

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


class ImportUnleashView(APIView):
    query_parameters = frozenset({"environment"})
    required_scopes = {"POST": "flags:write"}

    @extend_schema(parameters=[OpenApiParameter("environment", str, required=True)], request=dict,
                   responses={200: docs.UnleashImportSummarySerializer})
    def post(self, request):
        tenant = request_tenant(request)
        env_slug = request.query_params.get("environment")
        if not env_slug:
            raise ValidationFailed("?environment= is required", details={"environment": ["required"]})
        env = environment_named(env_slug)
        summary = services.flags_import_unleash(
            tenant=tenant, environment=env, document=request.data, actor=request.auth.actor, user_id=request.auth.user_id
        )
        return Response(summary)


# --- OFREP ---------------------------------------------------------------------------

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
        try:
            ctx, env = _ofrep_context(request)
        except ValueError as exc:
            return _ofrep_error(key, "INVALID_CONTEXT", str(exc), 400)
        if not env:
            return _ofrep_error(key, "INVALID_CONTEXT", "no environment: send X-Environment, context.environment, or use an API key with an environment", 400)
        try:
            environment_get(slug=env)
        except NotFound:
            return _ofrep_error(key, "INVALID_CONTEXT", f"environment '{env}' does not exist", 400)
        tenant = request_tenant(request)
        result = selectors.flag_evaluate(tenant=tenant, environment=env, name=key, context=ctx)
        if result.reason == "FLAG_NOT_FOUND":
            return _ofrep_error(key, "FLAG_NOT_FOUND", f"flag '{key}' was not found", 404)
        return Response(ofrep_out(key, result))


class OfrepBulkView(APIView):
    """``POST /ofrep/v1/evaluate/flags``: every flag of the environment; ETag and 304."""

    required_scopes = {"POST": "flags:read"}

    @extend_schema(
        request=docs.OfrepRequestSerializer,
        responses={
            **docs.conditional(docs.OfrepBulkSerializer),
            400: docs.ofrep_error(400, "INVALID_CONTEXT (OFREP's body), or a malformed request (the common error body)"),
        },
    )
    def post(self, request):
        try:
            ctx, env = _ofrep_context(request)
        except ValueError as exc:
            return _ofrep_error(None, "INVALID_CONTEXT", str(exc), 400)
        if not env:
            return _ofrep_error(None, "INVALID_CONTEXT", "no environment: send X-Environment, context.environment, or use an API key with an environment", 400)
        try:
            environment_get(slug=env)
        except NotFound:
            return _ofrep_error(None, "INVALID_CONTEXT", f"environment '{env}' does not exist", 400)
        tenant = request_tenant(request)
        body, etag = selectors.flags_evaluate_all_shaped(tenant=tenant, environment=env, context=ctx, shape=_ofrep_bulk_shape)
        if not_modified(request, etag):
            response = Response(status=304)
        else:
            response = Response(body)
        response["ETag"] = etag
        return response


# --- the lean path of seed 001's evaluate -----------------------------------------------

_evaluate_view = EvaluateView.as_view()


def _evaluate_lean(request) -> HttpResponse | None:
    """``POST /api/v1/feature-flags/evaluate`` for the common case (see
    ``config_hub.api.lean``): a JSON body that passes the same checks, an existing
    environment and flag. The same functions as EvaluateView; anything else
    returns None and EvaluateView answers."""
    meta = request.META
    if meta.get("CONTENT_TYPE", "").partition(";")[0].strip() != "application/json" or meta.get("QUERY_STRING"):
        return None  # a query string is refused (the route takes none): the DRF view says so
    principal = lean_principal(request, "flags:read")
    if principal is None:
        return None
    try:
        data = evaluate_body(loads(request.body))
        slug = _environment(request, data.get("environment"), principal)
        context = _context(data)
        tenant = tenant_for_principal(principal)
    except (ValueError, RecursionError, DomainError, RequestDataTooBig):
        return None  # the DRF view words the refusal
    if admit(principal) is not None:
        return None  # throttled: the DRF view answers 429
    result = selectors.flag_evaluate(tenant=tenant, environment=slug, name=data["flag_name"], context=context)
    if result.reason == "FLAG_NOT_FOUND":
        return None
    return json_response(evaluation_out(result))


@functools.wraps(_evaluate_view)  # keeps view_class/cls/csrf_exempt: the schema and the route matrix see the DRF view
def evaluate_route(request):
    if request.method == "POST":
        response = _evaluate_lean(request)
        if response is not None:
            return response
    return _evaluate_view(request)
