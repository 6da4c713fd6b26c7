"""Lean routes: the hottest requests answered without DRF's per-request machinery.

A lean route serves only the case that is nearly every request of the fleet (an
API key bound to a tenant, holding the route's scope, a plain request) and does
the same work through the same functions as its DRF view. For anything else it
hands the request to the DRF view, so every refusal and every error comes from
one place. :func:`lean_route` owns what every lean route shares; an app writes
only its handler::

    _config_key_view = ConfigKeyView.as_view()

    @lean_route(_config_key_view, method="GET", scope="configs:read",
                query=("environment", "service_name"), timer=CONFIG_FETCH_SECONDS.labels("config"))
    def config_key_route(request, principal, query, key):
        data = ...                    # every check that may hand the request over
        if not data["found"]:
            return None               # the DRF view answers (404)
        return lambda: json_response(...)   # the answer, after the throttle's count

The route checks, in this order, and hands over at the first that fails: the
method; the ``Content-Type`` of a body route; the query string (only ``query``'s
names, ``?format=`` and anything else go to DRF); ``Accept`` (none, ``*/*`` or
``application/json``, as ``JsonFirstNegotiation``'s shortcut); an API key read
by the DRF authentication's own :func:`~core.api.authentication.api_key_token`,
already in the principal cache (an unknown, uncached, revoked or malformed key is
the DRF view's: its refusal, its failure throttle, its one query), holding
``scope``. A key bound to a tenant and a platform key naming one with
``X-Tenant-ID`` are both served: the handler takes the caller's tenant from
:func:`lean_tenant`, which answers as the DRF views' ``request_tenant`` (a tenant
the caller may not reach raises NotFound: the DRF view answers 404).
Then the handler runs; it returns None (hand over) or a function of no arguments
that answers. Between the two the throttle is counted (``admit``, the DRF
throttle's own counter): a request handed over before that is counted once, by
the DRF view. Two cases are counted twice: a throttled request, which is over its
rate anyway, and an answer function returning None for what is known only by
answering (an evaluation of a flag that does not exist). A ``DomainError``,
``ValueError`` (bad JSON), ``RecursionError``, ``RequestDataTooBig`` or
``SecretDecryptionError`` in the handler or its answer also hands over: the DRF
view words the error. ``timer`` (anything with ``observe(seconds)``) times the
answers the lean route gives, as the DRF view's timer times its own.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, HttpResponseNotModified
from rest_framework.exceptions import AuthenticationFailed

from core import directory
from core.errors import DomainError
from core.fields import SecretDecryptionError

from .authentication import api_key_token
from .negotiation import PLAIN_ACCEPT
from .principal import Principal
from .renderers import dumps
from .tenancy import principal_tenant
from .throttling import admit

# What a handler may raise instead of returning None: the DRF view words the refusal.
HAND_OVER = (DomainError, ValueError, RecursionError, RequestDataTooBig, SecretDecryptionError)


class _HandOver(Exception):
    """A check of the lean route failed: the DRF view answers."""


_HAND_OVER = (_HandOver, AuthenticationFailed, *HAND_OVER)

_NO_QUERY: Mapping[str, str] = MappingProxyType({})

Answer = Callable[[], HttpResponse | None]
Handler = Callable[..., Answer | None]


def lean_route(drf_view, *, method: str, scope: str, query: Iterable[str] = (), content_type: str | None = None,
               timer=None, credential: Callable[[object], Principal | None] | None = None,
               ) -> Callable[[Handler], Callable[..., HttpResponse]]:
    """A view for the URL conf: ``handler`` answers ``method`` requests that pass
    the checks above, ``drf_view`` (an ``as_view()``) everything else.

    ``handler(request, principal, query, **url_kwargs)`` gets the caller's
    Principal and the query parameters as a mapping (names of ``query`` only).
    ``content_type`` (a body route): the media type the lean route serves; the
    route then takes no query string. The returned view carries ``drf_view``'s
    attributes (``view_class``, ``csrf_exempt``: the schema and the route matrix
    see the DRF view) and ``lean_scope``.

    ``credential(request)``: another credential the route serves when the request
    carries no API key (the heartbeat's service token): the caller's Principal,
    only from what the DRF authentication already verified and cached, else None
    (the DRF view authenticates); it may raise AuthenticationFailed (hand over)."""
    known = frozenset(query)
    if content_type is not None and known:
        raise ValueError("a body route takes no query parameters")

    def decorate(handler: Handler) -> Callable[..., HttpResponse]:
        @functools.wraps(drf_view)
        def route(request, *args, **kwargs):
            if request.method == method:
                started = time.perf_counter() if timer is not None else 0.0
                try:  # each check that fails raises: the DRF view answers
                    meta = request.META
                    raw_query = meta.get("QUERY_STRING")
                    if content_type is not None:
                        if raw_query:
                            raise _HandOver  # a body route takes no query string: the DRF view refuses it
                        sent = meta.get("CONTENT_TYPE", "")
                        if sent != content_type and sent.partition(";")[0].strip() != content_type:
                            raise _HandOver
                        params = _NO_QUERY
                    elif raw_query:
                        params = _plain_query(raw_query) or request.GET
                        if not params.keys() <= known:
                            raise _HandOver
                    else:
                        params = _NO_QUERY
                    if meta.get("HTTP_ACCEPT") not in PLAIN_ACCEPT:
                        raise _HandOver
                    token = api_key_token(request)  # AuthenticationFailed: malformed
                    if token is not None:
                        principal = directory.api_key_principal(raw_key=token, allow_query=False)
                    else:
                        principal = None if credential is None else credential(request)
                    if principal is None or principal is directory.UNCHECKED or not principal.has_scope(scope):
                        raise _HandOver
                    answer = handler(request, principal, params, **kwargs)
                    if answer is None or admit(principal) is not None:
                        raise _HandOver  # throttled: the DRF view answers 429
                    response = answer()
                except _HAND_OVER:
                    response = None
                if response is not None:
                    if timer is not None:
                        timer.observe(time.perf_counter() - started)
                    return response
            return drf_view(request, *args, **kwargs)

        route.lean_scope = scope
        return route

    return decorate


def lean_tenant(request, principal):
    """The tenant of a lean request: ``X-Tenant-ID``'s, else the key's, else
    ``default`` (``core.api.tenancy.request_tenant``'s rules); NotFound (the DRF
    view answers) for a tenant the caller may not reach."""
    return principal_tenant(principal, request.META.get("HTTP_X_TENANT_ID") or None)


def _plain_query(raw: str) -> dict[str, str] | None:
    """A query string with nothing to decode (ASCII, no ``%``, ``+`` or ``;``) as a
    dict, the last value of a repeated name winning as in ``QueryDict.get``; None
    for anything else (then ``request.GET`` parses it). Parsing a QueryDict costs
    more function calls than the rest of a cached read."""
    if not raw.isascii() or "%" in raw or "+" in raw or ";" in raw:
        return None
    out = {}
    for part in raw.split("&"):
        if part:
            name, _, value = part.partition("=")
            out[name] = value
    return out


def json_response(body, *, etag: str | None = None) -> HttpResponse:
    """The answer a DRF view would render for ``body`` (JSON, ``Vary: Accept``);
    ``body`` as bytes: JSON rendered already (with :func:`core.api.renderers.dumps`)."""
    response = HttpResponse(body if isinstance(body, bytes) else dumps(body), content_type="application/json")
    _set_headers(response, etag)
    return response


def _set_headers(response: HttpResponse, etag: str | None) -> None:
    # ``Vary`` and the ETag straight into the header store: ``response[...] = ``
    # checks and encodes each value (a tenth of a lean read's own cost); these are
    # ASCII constants and ETags the hub made (hex digits, ids, quotes).
    store = response.headers._store
    store["vary"] = ("Vary", "Accept")
    if etag:
        store["etag"] = ("ETag", etag)


def not_modified_response(etag: str) -> HttpResponse:
    """The 304 a DRF view answers for a representation the caller holds."""
    response = HttpResponseNotModified()
    _set_headers(response, etag)
    return response
