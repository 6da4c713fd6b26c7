"""The one validator of the URLs the hub stores and may call: an instance's
``service_url`` and ``health_check_url``, a webhook's ``url``.

Django's ``URLValidator`` wants a dotted domain, so it refuses the addresses
services have inside Docker Compose or Kubernetes (``http://user-service:8080``).
This one accepts single-label host names, IPv4 and bracketed IPv6 literals and
ports, and refuses everything but ``http`` and ``https``, credentials in the URL
(they would end up in events and logs), anything but printable ASCII (an IDN
host goes in its ``xn--`` form) and more than :data:`MAX_URL_LENGTH` characters.
Whether the hub may *call* a URL is another question, answered at send time by
:mod:`core.outbound`.
"""
from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.errors import ValidationFailed

MAX_URL_LENGTH = 2048
SCHEMES = ("http", "https")

# A host-name label: letters, digits, hyphens (not at either end) and underscores
# (Docker Compose service names may have them).
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
# A last label that a resolver would read as a number ("127.1", "0x7f.1", "2130706433").
_NUMERIC = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")


def url_problem(value: object) -> str | None:
    """Why ``value`` is not a URL the hub accepts, or None."""
    if not isinstance(value, str) or not value:
        return "Enter a URL."
    if len(value) > MAX_URL_LENGTH:
        return f"A URL has at most {MAX_URL_LENGTH} characters (this one has {len(value)})."
    if any(not ("!" <= ch <= "~") for ch in value):
        return "A URL has only printable ASCII characters and no spaces (percent-encode others; an IDN host in its xn-- form)."
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        return f"Enter a valid URL ({exc})."
    if parts.scheme.lower() not in SCHEMES:
        return "Only http and https URLs are accepted."
    if not parts.netloc:
        return "Enter a valid URL (no host)."
    if "@" in parts.netloc:
        return "Credentials in the URL are not accepted."
    if port == 0:
        return "Enter a valid URL (port 0)."
    host = parts.hostname or ""
    if not host:
        return "Enter a valid URL (no host)."
    if "[" in parts.netloc:
        try:
            if "%" in host:
                raise ValueError("zone")
            ipaddress.IPv6Address(host)
        except ValueError:
            return "Enter a valid URL (the bracketed host is not an IPv6 address)."
        return None
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if _NUMERIC.match(labels[-1]):
        try:
            ipaddress.IPv4Address(name)
        except ValueError:
            return "Enter a valid URL (an IPv4 address is four decimal numbers, e.g. 10.0.0.5)."
        return None
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        return "Enter a valid URL (the host is not a valid host name)."
    return None


def validate_service_url(value: object) -> None:
    """A Django validator (models, forms, DRF fields)."""
    problem = url_problem(value)
    if problem:
        raise ValidationError(problem, code="invalid_url")


def url_check(value: str, field: str) -> None:
    """The same rule for services: a ``ValidationFailed`` naming the field."""

    problem = url_problem(value)
    if problem:
        raise ValidationFailed(f"{field}: {problem}", details={field: [problem]})


def service_url_field(**kwargs):
    """The DRF field of such a URL (a string in the schema, format ``uri``)."""

    @extend_schema_field({"type": "string", "format": "uri", "maxLength": MAX_URL_LENGTH})
    class ServiceURLField(serializers.CharField):
        pass

    return ServiceURLField(validators=[validate_service_url], **kwargs)
