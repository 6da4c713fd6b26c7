"""Operations endpoints: /health, /metrics and JSON error pages."""
from __future__ import annotations

import os
import time

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django_redis import get_redis_connection
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework.request import Request

import config_hub
from config_hub.celery import app
from core.api.authentication import ApiKeyAuthentication, JWTAuthentication
from core.errors import error_body

from .metrics import render
from .tasks import beat_last_run

_STARTED = time.monotonic()


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "healthy"
    except Exception:  # noqa: BLE001 - any failure means unhealthy
        return "unhealthy"


def _check_redis() -> str:
    if not settings.REDIS_URL:
        return "not_configured"
    try:
        get_redis_connection("default").ping()
        return "healthy"
    except Exception:  # noqa: BLE001
        return "unhealthy"


def _check_broker() -> str:
    url = settings.CELERY_BROKER_URL
    if url.startswith("filesystem://"):
        return "healthy"
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0, timeout=1)
        return "healthy"
    except Exception:  # noqa: BLE001
        return "unhealthy"


def _beat_age() -> float | None:

    try:
        last = beat_last_run()
    except Exception:  # noqa: BLE001
        return None
    return None if last is None else max(0.0, time.time() - float(last))


def health(request: HttpRequest) -> JsonResponse:
    """The health document (service, status, version, port, dependencies, metrics);
    ``degraded`` when a dependency is down.

    ``beat`` is ``unknown`` until the beat has run once (a fresh hub), ``stale``
    when its last run is older than ``BEAT_STALE_AFTER`` seconds (degraded).
    """
    deps = {"database": _check_database(), "redis": _check_redis(), "broker": _check_broker()}
    beat_age = _beat_age()
    if beat_age is None:
        deps["beat"] = "unknown"
    else:
        deps["beat"] = "healthy" if beat_age <= settings.BEAT_STALE_AFTER else "stale"
    status = "healthy" if all(v in ("healthy", "not_configured", "unknown") for v in deps.values()) else "degraded"
    body = {
        "service": settings.SERVICE_NAME,
        "status": status,
        "version": config_hub.__version__,
        "port": settings.SERVICE_PORT,
        "dependencies": deps,
        "metrics": {
            "uptime_seconds": round(time.monotonic() - _STARTED, 3),
            "beat_last_run_seconds_ago": None if beat_age is None else round(beat_age, 1),
            "pid": os.getpid(),
        },
    }
    return JsonResponse(body, status=200)


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text: config fetch latency, cache hits, flag evaluations, registry
    instances by status, webhook deliveries by outcome."""
    if not settings.METRICS_PUBLIC and not _authenticated(request):
        return JsonResponse(error_body("not_authenticated", "credentials required"), status=401)


    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)


def _authenticated(request: HttpRequest) -> bool:


    drf_request = Request(request)
    for auth in (ApiKeyAuthentication(), JWTAuthentication()):
        try:
            if auth.authenticate(drf_request):
                return True
        except Exception:  # noqa: BLE001 - bad credentials: not authenticated
            return False
    return bool(getattr(request, "user", None) and request.user.is_authenticated and request.user.is_staff)


def bad_request(request: HttpRequest, exception=None) -> JsonResponse:
    return JsonResponse(error_body("bad_request", "malformed request"), status=400)


def not_found(request: HttpRequest, exception=None) -> JsonResponse:
    return JsonResponse(error_body("not_found", "no such route"), status=404)


def server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(error_body("server_error", "internal error"), status=500)


