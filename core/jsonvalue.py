"""The one rule for JSON that the hub stores: bounded depth, bounded size, valid Unicode.

Every place a JSON value enters (the API's parser, the services that store
config values, schemas, default values, registry metadata, flag strategies and
variants, webhook filters, the admin's JSON fields, imports) calls
``validate_json_value``. The limits sit far below what any later step can take:
a value 500 deep used to be accepted, then failed to pickle into Redis (every
bundle of its tenant answered 500) and to render with orjson (limit 254);
a lone surrogate (JSON ``"\\ud800"``) was stored, then every read failed to
encode it.
"""
from __future__ import annotations

import math
from typing import Any

from core.errors import ValidationFailed

# Nesting of one stored value: ``1`` is 0, ``[1]`` is 1, ``{"a": [1]}`` is 2.
JSON_MAX_DEPTH = 32
# Size of one stored value, counted as its compact JSON text (UTF-8 bytes).
JSON_MAX_BYTES = 256 * 1024
# A request body or an import document wraps the values it carries in a few
# levels of its own (``{"configs": [{"value": ...}]}``): it may be that much deeper.
ENVELOPE_DEPTH = 8



def _where(path: tuple | None) -> str:
    # ``path`` is a linked list, (parent, key), built only as far as the walk goes.
    parts = []
    while path is not None:
        path, part = path
        parts.append(part)
    out = "$"
    for part in reversed(parts):
        if isinstance(part, str):
            # A message must be valid Unicode itself: a lone surrogate is shown escaped.
            out += "." + part.encode("utf-8", "backslashreplace").decode()
        else:
            out += f"[{part}]"
    return out if len(out) <= 200 else out[:197] + "..."


def _text_size(text: str, what: str, path: tuple | None, key: bool = False) -> int:
    if text.isascii():
        return len(text) + 2
    try:
        return len(text.encode("utf-8")) + 2
    except UnicodeEncodeError:
        place = f"a key at {_where(path)}" if key else _where(path)
        raise ValidationFailed(
            f"{what} is not valid Unicode: {place} holds a lone surrogate",
            details={"path": _where(path), "rule": "valid Unicode (no lone surrogates)"},
            code="invalid_unicode",
        ) from None


def validate_json_value(
    value: Any,
    *,
    what: str = "value",
    max_depth: int | None = JSON_MAX_DEPTH,
    max_bytes: int | None = JSON_MAX_BYTES,
) -> None:
    """Refuse (ValidationFailed, a 400) a value nested deeper than ``max_depth``,
    larger than ``max_bytes`` as JSON text, holding text that is not valid
    Unicode, or holding something that is not JSON (a NaN, a date from YAML).

    ``what`` names the value in the message (``"value"``, ``"metadata"``,
    ``"request body"``); the details give the JSON path and the limit.
    """
    size = 0
    # Iterative: the check itself must not recurse on what it is refusing.
    stack: list[tuple[Any, int, tuple | None]] = [(value, 0, None)]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, (dict, list, tuple)):
            if max_depth is not None and depth + 1 > max_depth:
                raise ValidationFailed(
                    f"{what} is nested deeper than the limit of {max_depth} levels (at {_where(path)})",
                    details={"path": _where(path), "max_depth": max_depth},
                    code="json_too_deep",
                )
            size += 2
            if isinstance(node, dict):
                for k, v in node.items():
                    if isinstance(k, str):
                        size += _text_size(k, what, (path, k), key=True) + 1
                    elif isinstance(k, (int, float, bool)) or k is None:
                        size += 8
                    else:
                        raise ValidationFailed(f"{what} is not JSON: a key at {_where(path)} is a {type(k).__name__}",
                                               details={"path": _where(path)}, code="not_json")
                    stack.append((v, depth + 1, (path, k)))
            else:
                for i, v in enumerate(node):
                    stack.append((v, depth + 1, (path, i)))
        elif isinstance(node, str):
            size += _text_size(node, what, path)
        elif isinstance(node, bool) or node is None:
            size += 5
        elif isinstance(node, int):
            size += node.bit_length() // 3 + 2  # decimal digits, roughly, without str() of a huge int
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise ValidationFailed(f"{what} is not JSON: {_where(path)} is {node}",
                                       details={"path": _where(path)}, code="not_json")
            size += 24
        else:
            raise ValidationFailed(f"{what} is not JSON: {_where(path)} is a {type(node).__name__}",
                                   details={"path": _where(path)}, code="not_json")
        size += 1
        if max_bytes is not None and size > max_bytes:
            raise ValidationFailed(
                f"{what} is larger than the limit of {max_bytes} bytes of JSON",
                details={"max_bytes": max_bytes},
                code="json_too_large",
            )
