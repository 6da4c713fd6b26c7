"""The Unleash client API: ``/unleash/{environment}/api/client/{features,register,metrics}``.

The routes Unleash's server-side SDKs call, so an SDK configured with
``url = {hub}/unleash/{environment}/api`` and ``custom_headers =
{"Authorization": key}`` evaluates the hub's flags locally. Unleash SDKs send
their token without a scheme: these views (and only these) also accept a bare
``chk_`` key (:class:`~core.api.authentication.BareApiKeyAuthentication`).
"""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from core.api.authentication import BareApiKeyAuthentication
from core.api.conditional import not_modified
from core.api.strict import UnknownFields, unknown_names
from core.api.tenancy import request_tenant
from core.errors import ValidationFailed
from flags import selectors
from tenants.selectors import environment_get

# The client metadata every Unleash SDK sends with register and metrics
# (Unleash's clientApplicationSchema / clientMetricsSchema and the SDKs' payloads).
_METADATA = frozenset({
    "appName", "instanceId", "connectionId", "environment", "sdkVersion", "sdkFlavor", "sdkFlavorVersion",
    "platformName", "platformVersion", "yggdrasilVersion", "specVersion",
})
_REGISTER_FIELDS = _METADATA | {"strategies", "started", "interval", "projects"}
_METRICS_FIELDS = _METADATA | {"bucket", "impactMetrics"}
_BUCKET_FIELDS = frozenset({"start", "stop", "toggles"})
_TOGGLE_FIELDS = frozenset({"yes", "no", "variants"})
_MAX_TEXT = 500
_MAX_LIST = 1_000
_MAX_TOGGLES = 10_000
_MAX_COUNT = 2**31 - 1


def _environment(environment: str) -> str:
    environment_get(slug=environment)  # 404 JSON for an environment that does not exist
    return environment


def _object(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise ValidationFailed(f"{what} must be a JSON object", details={what: ["must be an object"]})
    return value


def _known(body: dict, known: frozenset, where: str = "") -> None:
    unknown = unknown_names(body, known)
    if unknown:
        raise UnknownFields(f"unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(where + n for n in unknown)}",
                            details={where + n: ["unknown field"] for n in unknown})


def _metadata(body: dict, known: frozenset) -> None:
    """The client metadata: appName required; each field a string of bounded length."""
    _known(body, known)
    if not isinstance(body.get("appName"), str) or not body["appName"]:
        raise ValidationFailed("appName is required (a string)", details={"appName": ["required"]})
    for name in _METADATA:
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > _MAX_TEXT):
            raise ValidationFailed(f"{name} must be a string of at most {_MAX_TEXT} characters", details={name: ["invalid"]})


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_COUNT:
        raise ValidationFailed(f"{what} must be a whole number from 0 to {_MAX_COUNT}", details={what: ["invalid"]})
    return value


def register_body(data: Any) -> dict:
    """An Unleash client registration (``/client/register``), checked."""
    body = _object(data, "body")
    _metadata(body, _REGISTER_FIELDS)
    for name in ("strategies", "projects"):
        value = body.get(name)
        if value is not None and (not isinstance(value, list) or len(value) > _MAX_LIST
                                  or not all(isinstance(v, str) and len(v) <= _MAX_TEXT for v in value)):
            raise ValidationFailed(f"{name} must be a list of at most {_MAX_LIST} strings", details={name: ["invalid"]})
    started = body.get("started")
    if started is not None and not (isinstance(started, str) and len(started) <= _MAX_TEXT) and (
            isinstance(started, bool) or not isinstance(started, (int, float))):
        raise ValidationFailed("started must be a date (a string or a number)", details={"started": ["invalid"]})
    if body.get("interval") is not None:
        _count(body["interval"], "interval")
    return body


def metrics_body(data: Any) -> dict[str, int]:
    """An Unleash metrics report (``/client/metrics``), checked; returns the
    evaluations per flag (its ``yes`` plus ``no``)."""
    body = _object(data, "body")
    _metadata(body, _METRICS_FIELDS)
    impact = body.get("impactMetrics")
    if impact is not None and (not isinstance(impact, list) or len(impact) > _MAX_LIST):
        raise ValidationFailed(f"impactMetrics must be a list of at most {_MAX_LIST} items",
                               details={"impactMetrics": ["invalid"]})
    bucket = body.get("bucket")
    if bucket is None:
        raise ValidationFailed("bucket is required (an object)", details={"bucket": ["required"]})
    bucket = _object(bucket, "bucket")
    _known(bucket, _BUCKET_FIELDS, "bucket.")
    toggles = _object(bucket.get("toggles", {}), "bucket.toggles")
    if len(toggles) > _MAX_TOGGLES:
        raise ValidationFailed(f"bucket.toggles has more than {_MAX_TOGGLES} flags", details={"bucket.toggles": ["too many"]})
    counts: dict[str, int] = {}
    for name, toggle in toggles.items():
        where = f"bucket.toggles.{name}"
        toggle = _object(toggle, where)
        _known(toggle, _TOGGLE_FIELDS, where + ".")
        variants = _object(toggle.get("variants", {}), where + ".variants")
        if len(variants) > _MAX_LIST:
            raise ValidationFailed(f"{where}.variants has more than {_MAX_LIST} variants", details={where: ["too many"]})
        for variant, n in variants.items():
            _count(n, f"{where}.variants.{variant}")
        counts[name] = _count(toggle.get("yes", 0), where + ".yes") + _count(toggle.get("no", 0), where + ".no")
    return counts


class _UnleashView(APIView):
    # A bare key first (as Unleash SDKs send it), then every usual credential.
    authentication_classes = [BareApiKeyAuthentication, *api_settings.DEFAULT_AUTHENTICATION_CLASSES]


class UnleashFeaturesView(_UnleashView):
    """``GET /unleash/{environment}/api/client/features``: the environment's flags of
    the caller's tenant in Unleash's client format; ETag and 304."""

    required_scopes = {"GET": "flags:read"}
    # An Unleash SDK configured with a project sends it; a tenant is the hub's one project.
    query_parameters = frozenset({"project"})

    @extend_schema(responses={200: OpenApiResponse(description="Unleash's client features document (version 2)"),
                              304: OpenApiResponse(description="unchanged since the ETag sent in If-None-Match")})
    def get(self, request, environment: str):
        tenant = request_tenant(request)
        env = _environment(environment)
        document, etag = selectors.unleash_client_features(tenant_id=tenant.pk, environment=env)
        response = Response(status=304) if not_modified(request, etag) else Response(document)
        response["ETag"] = etag
        return response


class UnleashRegisterView(_UnleashView):
    """``POST /unleash/{environment}/api/client/register``: an SDK announcing itself (202)."""

    required_scopes = {"POST": "flags:read"}

    @extend_schema(request=None, responses={202: None})
    def post(self, request, environment: str):
        request_tenant(request)
        _environment(environment)
        register_body(request.data)
        return Response(status=202)


class UnleashMetricsView(_UnleashView):
    """``POST /unleash/{environment}/api/client/metrics``: an SDK's evaluation counts
    (yes + no per flag) feed the hub's usage counters (202)."""

    required_scopes = {"POST": "flags:read"}

    @extend_schema(request=None, responses={202: None})
    def post(self, request, environment: str):
        tenant = request_tenant(request)
        env = _environment(environment)
        counts = metrics_body(request.data)
        selectors.unleash_metrics_record(tenant=tenant, environment=env, toggles=counts)
        return Response(status=202)
