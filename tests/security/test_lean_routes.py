"""Every lean route (``core.api.lean.lean_route``) applies the cross-cutting checks
(credential, revocation, scope, tenant header, throttle) exactly as its DRF view.

The routes are found in the URL conf, so a new lean route must be listed in
ROUTES below and is then held to the same checks. Each request goes to the route
the URL conf serves and to the DRF view behind it (``route.__wrapped__``).
"""
from __future__ import annotations

import json

import pytest
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from core import directory
from tests import factories as make

pytestmark = pytest.mark.django_db

# URL name -> (method, path, JSON body or None, the scope the route needs)
ROUTES = {
    "config-key": ("GET", "/api/v1/config/db.url?environment=production", None, "configs:read"),
    "flag-evaluate": ("POST", "/api/v1/feature-flags/evaluate",
                      {"flag_name": "beta", "environment": "production", "user_id": "user-7"}, "flags:read"),
    "config-bundle": ("GET", "/api/v1/config/service/svc?environment=production", None, "configs:read"),
    "registry-discover": ("GET", "/api/v1/registry/svc", None, "registry:read"),
    "heartbeat": ("POST", "/heartbeat", {"service_id": "svc", "response_time": 3.5}, "registry:write"),
}
# URL name -> (path, body) of a request its handler hands to the DRF view (404).
HANDED_OVER_BY_HANDLER = {
    "config-key": ("/api/v1/config/missing", None),
    "flag-evaluate": ("/api/v1/feature-flags/evaluate", {"flag_name": "beta", "environment": "nowhere"}),
    "config-bundle": ("/api/v1/config/service/svc?environment=nowhere", None),
    "registry-discover": ("/api/v1/registry/unregistered", None),
    "heartbeat": ("/heartbeat", {"service_id": 987654321}),
}


@pytest.fixture
def data(tenant, other_tenant, environments, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        make.config(tenant, "db.url", "tenant")
        make.flag(tenant, "beta", environment=environments["production"], is_enabled=True)
        make.config(tenant, "svc.timeout", 30, service_name="svc")
        make.config(tenant, "svc.password", "lean-bundle-secret", service_name="svc", is_secret=True)
        make.instance(tenant, "svc", "http://127.0.0.1:9471")


def _lean_routes(patterns=None) -> set[str]:
    found = set()
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            found |= _lean_routes(pattern.url_patterns)
        elif isinstance(pattern, URLPattern) and hasattr(pattern.callback, "lean_scope"):
            found.add(pattern.name)
    return found


def _cached_key(make_key, tenant, scopes: list[str], name: str | None = None) -> str:
    """A key whose principal is cached, as after its first request (an uncached key
    always goes to the DRF view, which caches it)."""
    raw = make_key(tenant=tenant, scopes=scopes, name=name)
    directory.api_key_principal(raw_key=raw)
    return raw


def _call(name: str, raw_key: str, *, drf: bool = False, handler_hands_over: bool = False, **headers):
    """The response of the route ``name`` to its request (``HANDED_OVER_BY_HANDLER``'s
    with ``handler_hands_over``), or of its DRF view alone with ``drf``."""
    method, path, body, _ = ROUTES[name]
    if handler_hands_over:
        path, body = HANDED_OVER_BY_HANDLER[name]
    if body and body.get("service_id") == "svc":  # the instance of ``data``
        from registry.models import Instance

        body = {**body, "service_id": Instance.objects.get(service__name="svc").pk}
    factory = RequestFactory()
    headers.setdefault("HTTP_AUTHORIZATION", f"ApiKey {raw_key}")
    if method == "POST":
        request = factory.post(path, json.dumps(body), content_type="application/json", **headers)
    else:
        request = factory.get(path, **headers)
    match = resolve(path.split("?")[0])
    view = match.func.__wrapped__ if drf else match.func
    return view(request, **match.kwargs)


def _send(name: str, raw_key: str, **options):
    """(status, JSON body, Retry-After) of ``_call``."""
    response = _call(name, raw_key, **options)
    if hasattr(response, "render"):
        response.render()
    return response.status_code, json.loads(response.content) if response.content else None, response.get("Retry-After")


def test_lean_routes__url_conf__each_listed_here_with_its_scope():
    assert _lean_routes() == set(ROUTES) == set(HANDED_OVER_BY_HANDLER)
    assert {name: resolve(path.split("?")[0]).func.lean_scope for name, (_, path, _, _) in ROUTES.items()} == {
        name: scope for name, (_, _, _, scope) in ROUTES.items()
    }


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_lean_route__plain_request_with_cached_key__answered_by_the_lean_route_as_by_the_drf_view(name, data, tenant,
                                                                                                  make_key):
    from rest_framework.response import Response

    raw = make_key(tenant=tenant, scopes=[ROUTES[name][3]])
    first = _call(name, raw)  # an uncached key: the DRF view answers (a DRF Response) and caches it

    second = _call(name, raw)  # the lean route answers (a plain HttpResponse)

    assert (isinstance(first, Response), isinstance(second, Response)) == (True, False)
    assert _send(name, raw) == _send(name, raw, drf=True)
    assert _send(name, raw)[0] == 200


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_lean_route__key_revoked_after_use__401_as_the_drf_view(name, data, tenant, django_capture_on_commit_callbacks):
    from tenants.services.api_keys import api_key_revoke

    row, raw = make.api_key(tenant=tenant, scopes=[ROUTES[name][3]])
    assert _send(name, raw)[0] == 200  # the key's principal is now cached in this process
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=row, actor="test")

    lean, drf = _send(name, raw), _send(name, raw, drf=True)

    assert lean == drf
    assert lean[0] == 401
    assert lean[1]["error"]["message"] == "Invalid, expired or revoked API key"


@pytest.mark.parametrize("name", sorted(ROUTES))
@pytest.mark.parametrize("case,expected", [
    ("other scope", 403),
    ("other tenant's header", 404),
    ("platform key", 200),
])
def test_lean_route__credential_cases__same_answer_as_the_drf_view(name, case, expected, data, tenant, other_tenant,
                                                                    make_key):
    scope = ROUTES[name][3]
    headers = {}
    if case == "other scope":
        raw = _cached_key(make_key, tenant, ["configs:read" if scope == "registry:read" else "registry:read"])
    elif case == "other tenant's header":
        raw = _cached_key(make_key, tenant, [scope])
        headers["HTTP_X_TENANT_ID"] = other_tenant.slug
    else:  # bound to every tenant: the DRF view resolves the tenant from X-Tenant-ID
        raw = _cached_key(make_key, None, [scope])
        headers["HTTP_X_TENANT_ID"] = tenant.slug

    lean, drf = _send(name, raw, **headers), _send(name, raw, drf=True, **headers)

    assert lean == drf
    assert lean[0] == expected


@pytest.mark.parametrize("name", sorted(ROUTES))
@pytest.mark.parametrize("handed_over,first_status", [
    ({"HTTP_ACCEPT": "application/*"}, 200),  # the route's own checks hand it over (DRF negotiates)
    ({"handler_hands_over": True}, 404),  # the app's handler hands it over
], ids=["by the route's checks", "by the handler"])
def test_lean_route__throttled__handed_over_request_counted_once_and_429_as_the_drf_view(
        name, handed_over, first_status, data, tenant, make_key, settings, clock):
    settings.API_THROTTLE_RATE = "2/min"
    clock.advance(20)  # 40 s left in the window
    scope = ROUTES[name][3]
    lean_key, drf_key = _cached_key(make_key, tenant, [scope], "lean"), _cached_key(make_key, tenant, [scope], "drf")

    lean = [_send(name, lean_key, **handed_over), _send(name, lean_key), _send(name, lean_key)]
    drf = [_send(name, drf_key, drf=True, **handed_over), _send(name, drf_key, drf=True), _send(name, drf_key, drf=True)]

    assert [(status, retry) for status, _, retry in lean] == [(first_status, None), (200, None), (429, "41")]
    assert lean == drf


# --- the heartbeat's service tokens (``credential`` of lean_route) ------------------------


def _beat(token: str, service_id: int, *, drf: bool = False, **body):
    """(status, JSON body, whether the lean route answered) of ``POST /heartbeat``."""
    from rest_framework.response import Response

    request = RequestFactory().post("/heartbeat", json.dumps({"service_id": service_id, **body}),
                                    content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
    view = resolve("/heartbeat").func
    response = (view.__wrapped__ if drf else view)(request)
    if hasattr(response, "render"):
        response.render()
    return response.status_code, json.loads(response.content), not isinstance(response, Response)


def test_heartbeat__service_token_verified_once__lean_route_answers_as_the_drf_view(tenant, service_token):
    inst = make.instance(tenant, "svc", "http://127.0.0.1:9471")
    token = service_token(inst, kid=True)

    first, second, drf = _beat(token, inst.pk), _beat(token, inst.pk), _beat(token, inst.pk, drf=True)

    assert (first[2], second[2], drf[2]) == (False, True, False)  # the DRF view verified it first
    assert first[:2] == second[:2] == drf[:2] == (200, {"service_id": inst.pk, "status": "ok"})


@pytest.mark.parametrize("case,expected", [
    ("another instance's id", 403),
    ("unknown status", 400),
    ("unknown field", 400),
    ("secret revoked", 401),
    ("expired", 401),
])
def test_heartbeat__service_token_cases__same_answer_as_the_drf_view(case, expected, tenant, service_token, clock,
                                                                     django_capture_on_commit_callbacks):
    from registry.models import ServiceTokenSecret
    from registry.tokens import service_token_secret_revoke

    me = make.instance(tenant, "svc", "http://127.0.0.1:9471")
    other = make.instance(tenant, "svc", "http://127.0.0.1:9472")
    token = service_token(me, exp=int(clock.now()) + 60)
    assert _beat(token, me.pk)[0] == 200  # verified and cached in this process
    service_id, body = me.pk, {}
    if case == "another instance's id":
        service_id = other.pk
    elif case == "unknown status":
        body = {"status": "asleep"}
    elif case == "unknown field":
        body = {"colour": "red"}
    elif case == "secret revoked":
        with django_capture_on_commit_callbacks(execute=True):
            service_token_secret_revoke(secret=ServiceTokenSecret.objects.get(tenant=tenant), actor="test")
    else:
        clock.advance(61)

    lean, drf = _beat(token, service_id, **body), _beat(token, service_id, drf=True, **body)

    assert lean[:2] == drf[:2]
    assert lean[0] == expected
