"""Lean paths: the hottest routes answered without DRF's per-request machinery.

A lean path serves only the case that is nearly every request of the fleet (an
API key bound to a tenant, holding the route's scope, a plain request) and does
the same work through the same functions as the DRF view. For anything else it
returns None and the DRF view answers, so every refusal and every error comes
from one place. The throttle is counted last, after every check that could hand
the request over, so a handed-over request is counted once, by the DRF view.
Two cases are counted twice: a throttled request, which is over its rate
anyway, and an evaluation of a flag that does not exist, known only by
evaluating.
"""
from __future__ import annotations

from django.http import HttpResponse

from core import directory

from .principal import API_KEY_PREFIX
from .renderers import dumps

_PLAIN_ACCEPT = (None, "*/*", "application/json")


def lean_principal(request, scope: str):
    """The caller of a lean path, or None (the DRF view then answers): an API key
    bound to a tenant, holding ``scope``, with nothing that asks for the full
    treatment (``X-Tenant-ID``, an unusual ``Accept``)."""
    meta = request.META
    kind, _, token = meta.get("HTTP_AUTHORIZATION", "").partition(" ")
    token = token.strip()
    if not token.startswith(API_KEY_PREFIX) or kind.lower() not in ("apikey", "bearer") or "HTTP_X_TENANT_ID" in meta:
        return None
    if meta.get("HTTP_ACCEPT") not in _PLAIN_ACCEPT:
        return None
    # Only a key already in the cache: a malformed, unknown or uncached key is the
    # DRF view's (api_key_authenticate: refusal, failure throttle, the one query).
    principal = directory.api_key_principal(raw_key=token, allow_query=False)
    if principal is None or principal is directory.UNCHECKED or principal.tenant_id is None or not principal.has_scope(scope):
        return None
    return principal


def json_response(body) -> HttpResponse:
    """The answer a DRF view would render for ``body`` (JSON, ``Vary: Accept``)."""
    response = HttpResponse(dumps(body), content_type="application/json")
    response["Vary"] = "Accept"
    return response
