"""OpenAPI documentation (drf-spectacular): what every app's documented answers share
(the error body, conditional answers, any-JSON fields, field helpers). Each app
describes its own bodies in ``<app>/api/docs.py`` with these.


These serializers only describe; no view validates or shapes with them (the
views build plain dicts, see ``tenants.api.serializers.entry_out`` and friends).
Keep each one next to the shape it documents in step: tests/security/test_fuzz.py
checks every answer of every operation against the published schema.

``ANY`` fields hold any JSON value (``null`` included); ``required=False`` marks a
key that is only present sometimes (``masked`` on a hidden secret, ``secret`` on
a new webhook).
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

# What each app's ``api/docs.py`` takes with ``from core.api.docs import *``.
__all__ = [
    "AnyJSON",
    "NOT_MODIFIED",
    "NO_CONTENT",
    "OFREP_OR_API_ERROR",
    "conditional",
    "enum_field",
    "error",
    "errors",
    "nullable_str",
    "ofrep_error",
    "when",
]


class AnyJSON(serializers.JSONField):
    """Any JSON value: object, array, string, number, boolean or null."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)


def nullable_str(**kw):
    return serializers.CharField(allow_null=True, **kw)


def when():
    return serializers.DateTimeField(allow_null=True)


def enum_field(*values: str, **kw) -> serializers.CharField:
    """A string from a fixed set. (``status`` fields stay plain strings: another
    ``status`` enum would rename the request serializers' shared ``StatusEnum``.)"""

    @extend_schema_field({"type": "string", "enum": list(values)})
    class EnumField(serializers.CharField):
        pass

    return EnumField(**kw)


# --- errors ------------------------------------------------------------------------


class ApiErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="machine-readable: validation_failed, not_found, stale_version, ...")
    message = serializers.CharField()
    details = AnyJSON(help_text="per-field messages for a 400, else usually null")


class ApiErrorSerializer(serializers.Serializer):
    """API.md's error body."""

    error = ApiErrorDetailSerializer()


class OfrepErrorSerializer(serializers.Serializer):
    """OFREP's error body (evaluation failures of the OFREP routes)."""

    key = serializers.CharField(required=False, help_text="the flag, on single evaluations")
    errorCode = enum_field("PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL", "FLAG_NOT_FOUND", "TYPE_MISMATCH")  # noqa: N815 - OFREP's name
    errorDetails = serializers.CharField(required=False)  # noqa: N815


_ERROR_TEXT = {
    400: "Bad input (JSON path of each violation in details)",
    401: "No valid credential",
    403: "The credential lacks the scope (or tenant binding) this route needs",
    404: "Not found (or a tenant the caller is not bound to)",
    409: "Conflict with an existing resource",
    412: "Stale version (If-Match or body version)",
    413: "Request body too large",
    415: "Unsupported media type (send application/json)",
    429: "Throttled (see Retry-After)",
    503: "A dependency (database, cache) is unavailable (see Retry-After)",
}


def error(status: int, description: str | None = None) -> OpenApiResponse:
    return OpenApiResponse(ApiErrorSerializer, description=description or _ERROR_TEXT.get(status, "Error"))


def errors(*statuses: int) -> dict:
    """``{status: the common error body}`` for ``responses={...}``."""
    return {status: error(status) for status in statuses}


NOT_MODIFIED = OpenApiResponse(None, description="Not modified: the If-None-Match ETag is current")
NO_CONTENT = OpenApiResponse(None, description="Done, no body")


def conditional(ok) -> dict:
    """A GET answered with an ETag: 200 with ``ok``, or 304 for If-None-Match."""
    return {200: ok, 304: NOT_MODIFIED}


OFREP_OR_API_ERROR = PolymorphicProxySerializer(
    component_name="OfrepOrApiError",
    serializers=[OfrepErrorSerializer, ApiErrorSerializer],
    resource_type_field_name=None,
)


def ofrep_error(status: int, description: str) -> OpenApiResponse:
    return OpenApiResponse(OFREP_OR_API_ERROR, description=description)
