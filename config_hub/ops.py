"""Operations endpoints: /health (seed 002's format) and JSON error pages."""
from __future__ import annotations

import os
import time

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

import config_hub

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
        from django_redis import get_redis_connection

        get_redis_connection("default").ping()
        return "healthy"
    except Exception:  # noqa: BLE001
        return "unhealthy"


def _check_broker() -> str:
    url = settings.CELERY_BROKER_URL
    if url.startswith("filesystem://"):
        return "healthy"
    try:
        from config_hub.celery import app

        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0, timeout=1)
        return "healthy"
    except Exception:  # noqa: BLE001
        return "unhealthy"


def health(request: HttpRequest) -> JsonResponse:
    """Seed 002's health document; ``degraded`` when a dependency is down."""
    deps = {"database": _check_database(), "redis": _check_redis(), "broker": _check_broker()}
    status = "healthy" if all(v in ("healthy", "not_configured") for v in deps.values()) else "degraded"
    body = {
        "service": settings.SERVICE_NAME,
        "status": status,
        "version": config_hub.__version__,
        "port": settings.SERVICE_PORT,
        "dependencies": deps,
        "metrics": {
            "uptime_seconds": round(time.monotonic() - _STARTED, 3),
            "pid": os.getpid(),
        },
    }
    return JsonResponse(body, status=200)


def bad_request(request: HttpRequest, exception=None) -> JsonResponse:
    return JsonResponse({"error": {"code": "bad_request", "message": "malformed request", "details": None}}, status=400)


def not_found(request: HttpRequest, exception=None) -> JsonResponse:
    return JsonResponse({"error": {"code": "not_found", "message": "no such route", "details": None}}, status=404)


def server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"error": {"code": "server_error", "message": "internal error", "details": None}}, status=500)


