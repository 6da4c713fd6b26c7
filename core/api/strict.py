"""Strict input: a body field or query parameter the route does not know is refused.

A typo must never widen what a request does: ``"enviroment": "staging"`` on a
config write used to be ignored, so the value was written for every
environment; ``"key_prefx"`` on a webhook subscribed it to every key; a
misspelt filter (``?enviroment=``) listed everything. Here they are a 400 that
names each unknown name (``{"error": {"code": "unknown_fields", "details":
{"enviroment": ["Unknown field."]}}}``), and nothing is written.

- Serializers: every write serializer derives from :class:`StrictSerializer`
  (nested ones too; the error then carries the path, ``{"filter": {"key_prefx":
  [...]}}``).
- Bodies checked by hand (the lean evaluate path, OFREP, the heartbeat's fast
  path, the Unleash import's top level): :func:`refuse_unknown`.
- Query parameters: :class:`KnownQueryParameters`, one of the API's default
  permission classes, checks ``request.query_params`` against the view's
  ``query_parameters`` (nothing else is accepted unless a view says so).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.permissions import BasePermission

from core.errors import ValidationFailed

UNKNOWN_FIELD = "Unknown field."
UNKNOWN_PARAMETER = "Unknown query parameter."
UNKNOWN_CODE = "unknown_field"

# DRF's own ``?format=`` (URL_FORMAT_OVERRIDE) is accepted on every route.
_ALWAYS = frozenset({"format"})

# ``query_parameters = ANY_QUERY``: the view takes arbitrary parameters (registry
# discovery: every parameter is a metadata filter).
ANY_QUERY: Any = object()


class UnknownFields(ValidationFailed):
    code = "unknown_fields"


def unknown_names(data: Mapping, known: Iterable[str]) -> list[str]:
    known = known if isinstance(known, (set, frozenset, Mapping)) else frozenset(known)
    return sorted(str(name) for name in data if name not in known)


def _message(paths: list[str], what: str) -> str:
    return f"unknown {what}{'s' if len(paths) > 1 else ''}: {', '.join(paths)}"


def body_error(errors: dict[str, list[str]], unknown: list[str]) -> ValidationFailed:
    """The 400 of a body checked by hand, worded as for a serializer: the field
    errors and the unknown fields together; ``unknown_fields`` when that is all."""
    details = {**errors, **{name: [UNKNOWN_FIELD] for name in unknown}}
    if not unknown:
        return ValidationFailed("Invalid input", details=details)
    if not errors:
        return UnknownFields(_message(unknown, "field"), details=details)
    return ValidationFailed(f"Invalid input; {_message(unknown, 'field')}", details=details)


def refuse_unknown(data: Any, known: Iterable[str]) -> None:
    """For bodies checked by hand: raise 400 ``unknown_fields`` naming every key of
    ``data`` not in ``known``. Anything but a mapping is left to the caller."""
    if isinstance(data, Mapping):
        names = unknown_names(data, known)
        if names:
            raise body_error({}, names)


class StrictSerializer(serializers.Serializer):
    """A serializer that refuses keys it does not declare (with every other error
    of the body, in DRF's shape: ``{"name": ["Unknown field."]}``)."""

    def to_internal_value(self, data):
        unknown: dict[str, list] = {}
        if isinstance(data, Mapping):
            unknown = {name: [ErrorDetail(UNKNOWN_FIELD, code=UNKNOWN_CODE)] for name in unknown_names(data, self.fields)}
        try:
            value = super().to_internal_value(data)
        except ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                raise ValidationError({**exc.detail, **unknown}) from exc
            raise
        if unknown:
            raise ValidationError(unknown)
        return value


def validated_body(serializer_class, data: Any, **kwargs) -> Any:
    """A request body through its serializer: 400 when it is not a JSON object or
    the serializer refuses it; else the serializer's ``validated_data``. Every
    view validates its body with this one function."""
    if not isinstance(data, dict):
        raise ValidationFailed("the request body must be a JSON object")
    ser = serializer_class(data=data, **kwargs)
    ser.is_valid(raise_exception=True)
    return ser.validated_data


def unknown_paths(detail: Any, prefix: str = "") -> tuple[list[str], bool]:
    """The paths of the unknown-field errors in a DRF error ``detail``, and whether
    they are all of it (then the answer's code is ``unknown_fields``)."""
    paths: list[str] = []
    only = True
    if isinstance(detail, Mapping):
        for name, sub in detail.items():
            if isinstance(sub, list) and sub and all(getattr(e, "code", None) == UNKNOWN_CODE for e in sub):
                paths.append(f"{prefix}{name}")
                continue
            sub_paths, sub_only = unknown_paths(sub, f"{prefix}{name}.")
            paths += sub_paths
            only = only and sub_only
    elif isinstance(detail, list):
        for index, sub in enumerate(detail):
            if isinstance(sub, (Mapping, list)):
                sub_paths, sub_only = unknown_paths(sub, f"{prefix}{index}.")
                paths += sub_paths
                only = only and sub_only
            else:
                only = False
    else:
        only = False
    return paths, only and bool(paths)


def unknown_fields_message(paths: list[str]) -> str:
    return _message(paths, "field")


class KnownQueryParameters(BasePermission):
    """Refuse query parameters the view does not declare (400, each one named).

    A view declares ``query_parameters``: a set of names for every method, or a
    mapping from method to names (HEAD follows GET), or :data:`ANY_QUERY`.
    Without a declaration a route takes no parameters. It runs after the scope
    check, so a caller without credentials still gets 401."""

    def has_permission(self, request, view) -> bool:
        params = request.query_params
        if not params:
            return True
        declared = getattr(view, "query_parameters", frozenset())
        if declared is ANY_QUERY:
            return True
        if isinstance(declared, Mapping):
            method = "GET" if request.method == "HEAD" else request.method
            declared = declared.get(method, frozenset())
        names = [name for name in unknown_names(params, declared) if name not in _ALWAYS]
        if names:
            raise UnknownFields(_message(names, "query parameter"), details={name: [UNKNOWN_PARAMETER] for name in names})
        return True


def int_param(request, name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    """An integer query parameter within [minimum, maximum], else 400 naming it."""
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValidationFailed(f"{name} must be an integer", details={name: ["must be an integer"]}) from exc
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ValidationFailed(f"{name} must be {bounds}", details={name: ["out of range"]})
    return value


_TRUE, _FALSE = frozenset({"1", "true", "yes"}), frozenset({"0", "false", "no", ""})


def bool_param(request, name: str) -> bool:
    """A boolean query parameter (``true``/``false``, ``1``/``0``, ``yes``/``no``;
    absent is false), else 400 naming it: ``explain=maybe`` is not silently false."""
    raw = request.query_params.get(name)
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValidationFailed(f"{name} must be true or false", details={name: ["must be true or false"]})
