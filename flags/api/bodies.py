"""Plain validation of the evaluate routes' bodies, without a DRF serializer.

A serializer costs about half a millisecond per request, as much as the rest of
an evaluation. These checks are the serializers' rules (``EvaluateSerializer``,
``EvaluateAllSerializer`` in views/evaluate.py, which still document the schema) written
out: the same fields, the same coercions (strings trimmed, numbers accepted as
strings) and the same messages, so a bad body gets the same JSON 400 as before.
tests/flags/test_bodies.py holds the two side by side.
"""
from __future__ import annotations

import re
from typing import Any

from core.api.strict import body_error, unknown_names
from core.errors import ValidationFailed

_MISSING: Any = object()
_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")

REQUIRED = "This field is required."
NULL = "This field may not be null."
BLANK = "This field may not be blank."
NOT_A_STRING = "Not a valid string."
NUL_CHARACTERS = "Null characters are not allowed."
NOT_A_SLUG = 'Enter a valid "slug" consisting of letters, numbers, underscores or hyphens.'


class _Invalid(Exception):
    def __init__(self, *messages: str):
        self.messages = list(messages)


def _char(value: Any, *, required: bool, allow_null: bool, allow_blank: bool, max_length: int | None,
          slug: bool = False) -> Any:
    """DRF's CharField/SlugField: blank check, then missing/null, type, trim, validators."""
    if value is not _MISSING and value is not None and (value == "" or str(value).strip() == ""):
        if not allow_blank:
            raise _Invalid(BLANK)
        return ""
    if value is _MISSING:
        if required:
            raise _Invalid(REQUIRED)
        return _MISSING
    if value is None:
        if not allow_null:
            raise _Invalid(NULL)
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        # SlugField's "invalid" message is the slug one, for a wrong type too.
        raise _Invalid(NOT_A_SLUG if slug else NOT_A_STRING)
    text = str(value).strip()
    errors = []
    if max_length is not None and len(text) > max_length:
        errors.append(f"Ensure this field has no more than {max_length} characters.")
    if "\x00" in text:
        errors.append(NUL_CHARACTERS)
    for ch in text:
        if 0xD800 <= ord(ch) <= 0xDFFF:
            errors.append(f"Surrogate characters are not allowed: U+{ord(ch):X}.")
            break
    if slug and not _SLUG.search(text):
        errors.append(NOT_A_SLUG)
    if errors:
        raise _Invalid(*errors)
    return text


def _dict(value: Any) -> Any:
    """DRF's DictField(required=False, default=dict): an object, keys as strings."""
    if value is _MISSING:
        return {}
    if value is None:
        raise _Invalid(NULL)
    if not isinstance(value, dict):
        raise _Invalid(f'Expected a dictionary of items but got type "{type(value).__name__}".')
    return {str(k): v for k, v in value.items()}


_FIELDS = {
    "flag_name": lambda v: _char(v, required=True, allow_null=False, allow_blank=False, max_length=200),
    "environment": lambda v: _char(v, required=False, allow_null=True, allow_blank=False, max_length=None, slug=True),
    "user_id": lambda v: _char(v, required=False, allow_null=True, allow_blank=True, max_length=500),
    "context": _dict,
}


def _body(data: Any, names: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValidationFailed("the request body must be a JSON object")
    out: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name in names:
        try:
            value = _FIELDS[name](data.get(name, _MISSING))
        except _Invalid as exc:
            errors[name] = exc.messages
            continue
        if value is not _MISSING:
            out[name] = value
    unknown = unknown_names(data, names)  # the serializers' StrictSerializer rule
    if errors or unknown:
        raise body_error(errors, unknown)
    return out


def evaluate_body(data: Any) -> dict[str, Any]:
    """``{"flag_name", "environment"?, "user_id"?, "context"?}``, checked."""
    return _body(data, ("flag_name", "environment", "user_id", "context"))


def evaluate_all_body(data: Any) -> dict[str, Any]:
    """``{"environment"?, "user_id"?, "context"?}``, checked."""
    return _body(data, ("environment", "user_id", "context"))
