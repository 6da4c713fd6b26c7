"""Request body size limit with API.md's JSON error (413) instead of Django's HTML 400."""
from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from core.errors import error_body


class BodySizeLimitMiddleware:
    """Refuse a declared body larger than ``MAX_REQUEST_BYTES`` before anything reads it.

    Bodies without Content-Length (chunked) are still bounded by Django's own
    ``DATA_UPLOAD_MAX_MEMORY_SIZE`` check when read, answered by ``handler400``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", ""):
            return JsonResponse(
                error_body("bad_request", "NUL characters are not allowed in URLs"),
                status=400,
            )
        if limit is not None and length > limit and not request.path.startswith("/admin/"):
            return JsonResponse(
                error_body("payload_too_large", f"request body over {limit} bytes", {"limit": limit}),
                status=413,
            )
        return self.get_response(request)
