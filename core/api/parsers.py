"""The JSON parser of the API: the standard library's, with a bounded depth.

The standard library keeps every number exact (a config value may hold an
integer beyond 64 bits, which orjson would turn into a float). Its decoder
recurses once per nesting level, so a body of ``[[[[...]]]]`` a hundred
thousand deep raised ``RecursionError``, a 500: here it is a JSON 400 like
any other malformed body. ``NaN`` and ``Infinity`` are refused, as DRF does.
"""
from __future__ import annotations

import json

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser as _DRFJSONParser

from core.jsonvalue import ENVELOPE_DEPTH, JSON_MAX_DEPTH, validate_json_value


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def loads(raw: bytes | str):
    """A request body's JSON, exactly as the API parses it; ValueError or
    RecursionError when it is not JSON, ValidationFailed when it is JSON the hub
    does not take (too deep, not valid Unicode)."""
    body = json.loads(raw, parse_constant=_refuse_constant)
    validate_json_value(body, what="request body", max_depth=JSON_MAX_DEPTH + ENVELOPE_DEPTH, max_bytes=None)
    return body


class JSONParser(_DRFJSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            return loads(raw)
        except RecursionError as exc:
            raise ParseError("JSON parse error - the document is nested too deeply") from exc
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a refused constant
            raise ParseError(f"JSON parse error - {exc}") from exc
