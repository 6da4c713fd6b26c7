"""The authorization matrix: every route and method of the URL conf, every kind of bad
credential, and a tenant that must never see another tenant's data.

Routes are discovered from the URL conf, so a new route cannot escape: a path
parameter this file does not know makes the test fail until a value is added to
``PARAMS`` (and the route's data to ``tenant_a_data``).
"""
from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import jwt
import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from core.api.permissions import IsAuthenticatedPrincipal, required_scope
from core.api.principal import ALL_SCOPES
from releases.services import release_create
from tests import factories as make

from .conftest import MATRIX_COUNTS, MATRIX_ROUTES

MARKER = "tenant-a-private-marker-7d1f"
SECRET_MARKER = "tenant-a-secret-marker-93ab"

# Routes any caller may reach: health and metrics (API.md), the login routes, and
# "docs/", a bare redirect to "docs" (which needs credentials, and is covered), and
# "", the root, a redirect to the admin (which asks for its own login).
PUBLIC = {"health", "metrics", "api/v1/auth/token/", "api/v1/auth/token/refresh/", "docs/", ""}
# Routes served by other means than a DRF view with scopes.
SKIP_PREFIXES = ("admin/", "static/", "bench/", "oidc/")  # oidc/: the admin's single sign-on (tests/sso)


def _walk(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p


def _view_class(pattern):
    cb = pattern.callback
    return getattr(cb, "view_class", None) or getattr(cb, "cls", None)


def discovered_routes():
    """(route, method, view class) for every API route and method of the URL conf."""
    out = []
    for route, pattern in _walk(get_resolver().url_patterns):
        if route.startswith(SKIP_PREFIXES) or route in PUBLIC:
            continue
        view = _view_class(pattern)
        methods = ["GET"]
        if view is not None:
            methods = [m.upper() for m in view.http_method_names if m not in ("options", "head", "trace") and hasattr(view, m)]
        for method in methods:
            out.append((route, method, view))
    return out


ROUTES = discovered_routes()


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.fixture
def tenant_a_data(tenant, environments):
    """Tenant A ("acme") with a config, a secret and whatever other apps add."""

    entry = make.config(tenant, "marker.key", MARKER, service_name="marker-svc")
    make.config(tenant, "marker.secret", SECRET_MARKER, is_secret=True)
    flag = make.flag(tenant, "marker.key", environment=environments["production"], is_enabled=True, description=MARKER)
    instance = make.instance(tenant, "marker-svc", "http://127.0.0.1:9999/marker", metadata={"note": MARKER})
    webhook = make.webhook(tenant, "http://127.0.0.1:9/marker", description=MARKER)
    release = release_create(tenant=tenant, environment=environments["production"], name=MARKER, actor="test")
    from changes.services.change_requests import change_request_create

    change_request = change_request_create(tenant=tenant, environment=environments["staging"], title=MARKER,
                                           changes=[{"type": "config.set", "key": "marker.key", "value": MARKER}], actor="test")
    return {"tenant": tenant, "config_id": entry.pk, "flag_id": flag.pk, "instance_id": instance.pk, "webhook_id": webhook.pk,
            "release_id": release.pk, "change_request_id": change_request.pk}


def _params(data) -> dict:
    return {
        "tenant_id": data["tenant"].slug,
        "slug": data["tenant"].slug,
        "key": "marker.key",
        "config_key": "marker.key",
        "config_id": data["config_id"],
        "service_name": "marker-svc",
        "flag_id": data["flag_id"],
        "instance_id": data["instance_id"],
        "webhook_id": data["webhook_id"],
        "environment": "production",
        "release_id": data["release_id"],
        "other_id": data["release_id"],
        "change_request_id": data["change_request_id"],
    }


def _path(route: str, params: dict) -> str:
    import re

    def sub(m):
        name = m.group(2)
        if name not in params:
            pytest.fail(f"route {route!r}: the matrix has no value for path parameter {name!r}; add it to _params()")
        return str(params[name])

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", sub, route)


BODY = {
    "key": "marker.key", "value": "x", "config_value": "x", "name": "x", "slug": "x", "schema": {"type": "string"},
    "environment": "production", "service_name": "marker-svc", "flag_name": "x", "service_url": "http://127.0.0.1:1",
    "service_id": 1, "status": "healthy", "url": "http://127.0.0.1:1/hook",
}


def _call(client: APIClient, method: str, path: str, **headers):
    kwargs = {"format": "json"} if method in ("POST", "PUT", "PATCH") else {}
    body = BODY if kwargs else None
    return getattr(client, method.lower())(path, body, **kwargs, **headers) if body else getattr(client, method.lower())(path, **headers)


def _no_leak(response) -> None:
    text = response.content.decode(errors="replace")
    assert MARKER not in text and SECRET_MARKER not in text, f"tenant A's data leaked: {text[:300]}"


def _bad_credentials(admin_user) -> dict[str, str]:
    from django.conf import settings

    expired = AccessToken.for_user(admin_user)
    expired.set_exp(lifetime=-timedelta(minutes=1))
    other_key = jwt.encode({"user_id": str(admin_user.pk), "token_type": "access", "exp": int(time.time()) + 600, "jti": "x"}, "not-our-signing-key-" * 3, algorithm="HS256")
    alg_none = _b64({"alg": "none", "typ": "JWT"}) + "." + _b64({"user_id": str(admin_user.pk), "token_type": "access", "exp": int(time.time()) + 600, "jti": "y"}) + "."
    bad_service = jwt.encode({"service_id": 1}, "not-the-service-secret-" * 2, algorithm="HS256")
    assert settings.SERVICE_JWT_SECRET != "not-the-service-secret-" * 2
    return {
        "none": "",
        "malformed": "Bearer",
        "malformed_apikey": "ApiKey",
        "unknown_scheme": "Basic dXNlcjpwYXNz",
        "unknown_api_key": "ApiKey chk_00000000_" + "A" * 43,  # well formed: reaches the look-up
        "bare_unknown_api_key": "chk_00000000_" + "A" * 43,  # as Unleash SDKs send it: 401 everywhere
        "expired_jwt": f"Bearer {expired}",
        "jwt_other_key": f"Bearer {other_key}",
        "jwt_alg_none": f"Bearer {alg_none}",
        "service_token_bad_signature": f"Bearer {bad_service}",
    }


@pytest.mark.django_db
def test_matrix__bad_credentials__every_route_answers_401_with_json_error(tenant_a_data, admin_user, settings):
    # Hundreds of failed authentications from one address: the failure throttle
    # (tests/security/test_api_key_abuse.py) would answer 429 long before the end.
    settings.API_AUTH_FAILURE_RATE = "off"
    credentials = _bad_credentials(admin_user)
    params = _params(tenant_a_data)
    failures = []
    for route, method, _view in ROUTES:
        path = _path(route, params)
        MATRIX_ROUTES.add((route, method))
        for case, header in credentials.items():
            client = APIClient()
            headers = {"HTTP_AUTHORIZATION": header} if header else {}
            response = _call(client, method, path, **headers)
            MATRIX_COUNTS[case] += 1
            _no_leak(response)
            if response.status_code != 401:
                failures.append(f"{method} {path} [{case}] -> {response.status_code}")
            elif response.get("Content-Type", "").startswith("application/json"):
                assert "error" in response.json(), f"{method} {path} [{case}] error body is not API.md's format"
    assert not failures, "\n".join(failures)


@pytest.mark.django_db
def test_matrix__key_of_another_tenant__never_sees_tenant_a(tenant_a_data, other_tenant, make_key):
    raw = make_key(tenant=other_tenant, scopes=sorted(ALL_SCOPES - {"admin"}), name="other-tenant-all-scopes")
    params = _params(tenant_a_data)
    failures = []
    for route, method, _view in ROUTES:
        path = _path(route, params)
        addresses_a = any(tok in route for tok in ("<str:tenant_id>", "<str:slug>", "<int:config_id>", "<str:flag_id>",
                                                    "<int:instance_id>", "<int:webhook_id>", "<str:release_id>",
                                                    "<str:change_request_id>"))
        for header_case, extra in (("own", {}), ("x_tenant_a", {"HTTP_X_TENANT_ID": "acme"})):
            client = APIClient()
            response = _call(client, method, path, HTTP_AUTHORIZATION=f"ApiKey {raw}", **extra)
            MATRIX_COUNTS[f"other_tenant_{header_case}"] += 1
            _no_leak(response)
            must_refuse = header_case == "x_tenant_a" or addresses_a
            if must_refuse and response.status_code not in (403, 404):
                failures.append(f"{method} {path} [{header_case}] -> {response.status_code}")
            if response.status_code >= 500:
                failures.append(f"{method} {path} [{header_case}] -> {response.status_code}")
    assert not failures, "\n".join(failures)


@pytest.mark.django_db
def test_matrix__key_missing_the_route_scope__answers_403(tenant_a_data, make_key):
    params = _params(tenant_a_data)
    failures = []
    keys: dict[str, str] = {}
    for route, method, view in ROUTES:
        if IsAuthenticatedPrincipal in getattr(view, "permission_classes", ()):
            continue  # the API docs: any valid credential, no scope
        scope = required_scope(view, method) if view is not None else None
        assert scope is not None, f"{method} {route} declares no scope: it would refuse everyone"
        if scope not in keys:
            keys[scope] = make_key(tenant=tenant_a_data["tenant"], scopes=sorted(ALL_SCOPES - {scope, "admin"}), name=f"no-{scope}")
        client = APIClient()
        response = _call(client, method, _path(route, params), HTTP_AUTHORIZATION=f"ApiKey {keys[scope]}")
        MATRIX_COUNTS["missing_scope"] += 1
        if response.status_code != 403:
            failures.append(f"{method} {route} without {scope} -> {response.status_code}")
        else:
            assert response.json()["error"]["code"] == "permission_denied"
    assert not failures, "\n".join(failures)
