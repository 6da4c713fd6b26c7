"""A fast JSON renderer (orjson) for the hot read paths."""
from __future__ import annotations

import json

import orjson
from rest_framework.renderers import JSONRenderer as _DRFJSONRenderer


def dumps(data, *, sort_keys: bool = False) -> bytes:
    """JSON bytes, with orjson; values it refuses (integers beyond 64 bits, which a
    config value may hold) go through the standard library instead."""
    try:
        return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS | (orjson.OPT_SORT_KEYS if sort_keys else 0))
    except TypeError:
        return json.dumps(data, sort_keys=sort_keys, ensure_ascii=False, separators=(",", ":"), default=str).encode()


class JSONRenderer(_DRFJSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        try:
            return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            return super().render(data, accepted_media_type, renderer_context)
