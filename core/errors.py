"""Domain errors raised by services and turned into API.md's JSON error format.

Services raise these; the DRF exception handler, the admin and the management
commands each present them their own way, so the rule that failed lives once.
"""
from __future__ import annotations

from typing import Any


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """API.md's error body, ``{"error": {"code", "message", "details"}}``: every
    JSON error the hub answers (DRF views, middleware, error pages) is built here."""
    return {"error": {"code": code, "message": message, "details": details}}


class DomainError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str, *, details: Any = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        if code:
            self.code = code


class ValidationFailed(DomainError):
    status = 400
    code = "validation_failed"


class Forbidden(DomainError):
    status = 403
    code = "permission_denied"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class ChangeRequestRequired(DomainError):
    """A direct write into a protected environment: it must go through a change request.

    A 409, but not a :class:`Conflict`: code that retries on a lost race (``except
    Conflict``) must never retry this one."""

    status = 409
    code = "change_request_required"


class StaleVersion(DomainError):
    status = 412
    code = "stale_version"


class DependencyDown(DomainError):
    status = 503
    code = "dependency_unavailable"
