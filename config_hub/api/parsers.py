"""A JSON parser on orjson: faster than the standard library, and bounded.

The standard library's decoder recurses once per nesting level, so a body of
``[[[[...]]]]`` a hundred thousand deep raised ``RecursionError`` (a 500).
orjson refuses documents nested deeper than 1,024 levels with a decode error,
which DRF answers as a JSON 400 like any other malformed body. orjson also
refuses ``NaN``/``Infinity`` and lone surrogates, which are not JSON either.
"""
from __future__ import annotations

import orjson
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser as _DRFJSONParser


class JSONParser(_DRFJSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
