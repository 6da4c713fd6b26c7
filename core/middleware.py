"""Middleware: a dead database as a clear 503 instead of a 500 page; the
Content-Security-Policy on the pages a browser renders."""
from __future__ import annotations

import logging
from collections.abc import Callable

from csp.middleware import CSPMiddleware
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.common import CommonMiddleware

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


class ApiCommonMiddleware(CommonMiddleware):
    """Django's CommonMiddleware, without the slash redirect for a write.

    A POST/PUT/PATCH/DELETE to a route without its trailing slash would be
    redirected (its body lost) or, in debug, fail with a RuntimeError page: it
    answers 404 instead (``JsonNotFoundMiddleware``), naming no route. A GET
    still gets the redirect, which loses nothing.
    """

    def should_redirect_with_slash(self, request) -> bool:
        return request.method in ("GET", "HEAD") and super().should_redirect_with_slash(request)


class JsonNotFoundMiddleware:
    """A request no route answers gets the JSON error body, in debug too.

    In production ``handler404`` already answers JSON; in debug (``make run``)
    Django renders its HTML page instead. The admin keeps its own pages.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (response.status_code == 404 and not request.path_info.startswith("/admin/")
                and response.get("Content-Type", "").startswith("text/html")):
            return JsonResponse(error_body("not_found", "no such route"), status=404)
        return response
