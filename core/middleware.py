"""Middleware: a dead database as a clear 503 instead of a 500 page; the
Content-Security-Policy on the pages a browser renders."""
from __future__ import annotations

import logging
from collections.abc import Callable

from csp.middleware import CSPMiddleware
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

from core.errors import error_body

logger = logging.getLogger(__name__)


def dependency_down_response(what: str) -> JsonResponse:
    response = JsonResponse(
        error_body("dependency_unavailable", f"{what} is unavailable, try again shortly"),
        status=503,
    )
    response["Retry-After"] = "5"
    return response


class DependencyErrorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, (OperationalError, InterfaceError)):
            logger.warning("database unavailable: %s", type(exception).__name__)
            return dependency_down_response("the database")
        if isinstance(exception, DatabaseError):
            logger.exception("database error")
            return dependency_down_response("the database")
        return None


class HtmlCSPMiddleware(CSPMiddleware):
    """django-csp's policy on HTML answers only (the admin, /docs, /redoc).

    A policy governs what a rendered page may load and run; a JSON answer renders
    nothing, and django-csp builds the header anew for every response (about a
    third of a cached config read's own time, measured with bench/inprocess.py).
    The API's answers therefore go without it.
    """

    def process_response(self, request, response):
        if not response.get("Content-Type", "").startswith("text/html"):
            return response
        return super().process_response(request, response)
