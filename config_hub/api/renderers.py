"""A fast JSON renderer (orjson) for the hot read paths."""
from __future__ import annotations

import orjson
from rest_framework.renderers import JSONRenderer as _DRFJSONRenderer


class JSONRenderer(_DRFJSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        try:
            return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            return super().render(data, accepted_media_type, renderer_context)
