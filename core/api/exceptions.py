"""API.md's error format: ``{"error": {"code", "message", "details"}}``."""
from __future__ import annotations

import logging
import re

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, DataError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from core.errors import DomainError, error_body
from core.fields import SecretDecryptionError

from .strict import unknown_fields_message, unknown_paths

logger = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    412: "stale_version",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "throttled",
    503: "dependency_unavailable",
}


class PreconditionFailed(exceptions.APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The resource has changed since the version you sent"
    default_code = "stale_version"

def _message(detail) -> str:
    if isinstance(detail, (list, tuple)) and detail:
        return _message(detail[0])
    if isinstance(detail, dict):
        return "Invalid input"
    return str(detail)


def _is_bad_text(exc: Exception) -> bool:
    text = str(exc)
    return isinstance(exc, DataError) or "NUL (0x00)" in text or "\\u0000" in text


_TOO_LONG = re.compile(r"value too long for type character varying\((\d+)\)")


def _bad_text_message(exc: Exception) -> str:
    """What the database refused, in words (every input is checked first, with its
    field named; this is the last line)."""
    text = str(exc)
    too_long = _TOO_LONG.search(text)
    if too_long:
        return f"a value is too long to be stored (at most {too_long.group(1)} characters)"
    if "out of range" in text:
        return "a number is out of the range that can be stored"
    if isinstance(exc, DataError) and not ("NUL (0x00)" in text or "\\u0000" in text or "0x00" in text):
        return "the request holds a value that cannot be stored"
    return "the request holds characters that cannot be stored (NUL)"


def exception_handler(exc, context):
    headers: dict[str, str] = {}
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status)

    if isinstance(exc, SecretDecryptionError):
        # A server misconfiguration (a key removed before rotation), not bad input:
        # say so clearly, never hand out the ciphertext.
        logger.error("secret decryption failed: %s", exc)
        return Response(error_body("secret_undecryptable", str(exc)), status=500)
    if isinstance(exc, DjangoValidationError):
        # A model validator run outside a serializer (a key in a URL path): bad input.
        details = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        return Response(error_body("validation_failed", _message(exc.messages), details), status=400)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, (DataError, ValueError)) and _is_bad_text(exc):
        # PostgreSQL refuses NUL characters and some escapes: bad input, not an outage.
        return Response(error_body("validation_failed", _bad_text_message(exc)), status=400)
    elif isinstance(exc, DatabaseError):
        logger.warning("database unavailable: %s", type(exc).__name__)
        return Response(
            error_body("dependency_unavailable", "the database is unavailable, try again shortly"),
            status=503,
            headers={"Retry-After": "5"},
        )
    if not isinstance(exc, exceptions.APIException):
        return None
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(int(exc.wait) + 1)
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    code = _CODES.get(exc.status_code, "error")
    if isinstance(exc, exceptions.ValidationError):

        code, message = "validation_failed", _message(exc.detail)
        unknown, only_unknown = unknown_paths(exc.detail)
        if unknown:  # a misspelt field is named in the message, not only in the details
            code = "unknown_fields" if only_unknown else code
            message = unknown_fields_message(unknown) if only_unknown else f"{message}; {unknown_fields_message(unknown)}"
        body = error_body(code, message, exc.detail)
    else:
        body = error_body(code, _message(exc.detail))
    return Response(body, status=exc.status_code, headers=headers)
