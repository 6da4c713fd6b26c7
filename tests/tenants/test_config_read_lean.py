"""The lean path of GET /api/v1/config/{key} answers exactly as the DRF view does.

Every request is sent to the route the URL conf serves and to the DRF view
alone; status, JSON body and ETag must be the same, whether the lean path
answered or handed the request to the DRF view.
"""
from __future__ import annotations

import json

import pytest
from django.test import RequestFactory

from core import directory
from tests import factories as make

pytestmark = pytest.mark.django_db

SECRET = "lean-path-secret-51a"


@pytest.fixture
def data(tenant, other_tenant, environments, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        make.config(tenant, "db.url", "tenant")
        make.config(tenant, "db.url", "prod-svc", environment=environments["production"], service_name="svc")
        make.config(tenant, "db.password", SECRET, is_secret=True)
        make.config(other_tenant, "db.url", "THEIRS")


def _answer(view, request, key):
    response = view(request, key=key)
    if hasattr(response, "render"):
        response.render()
    body = json.loads(response.content) if response.content else None
    return response.status_code, body, response.get("ETag")


@pytest.mark.parametrize("path,headers", [
    ("/api/v1/config/db.url", {}),
    ("/api/v1/config/db.url?environment=production&service_name=svc", {}),
    ("/api/v1/config/db.url?environment=production&service_name=svc&environment=staging", {}),
    ("/api/v1/config/db.url?service_name=s%76c&environment=production", {}),
    ("/api/v1/config/db.password", {}),
    ("/api/v1/config/db.password", {"reveal": True}),
    ("/api/v1/config/missing", {}),
    ("/api/v1/config/db.url?environment=nowhere", {}),
    ("/api/v1/config/db.url?explain=true", {}),
    ("/api/v1/config/db.url", {"HTTP_X_TENANT_ID": "globex"}),
    ("/api/v1/config/db.url", {"HTTP_ACCEPT": "text/html"}),
    ("/api/v1/config/db.url", {"scopes": ["flags:read"]}),
    ("/api/v1/config/db.url", {"bearer": True}),
    ("/api/v1/config/db.url", {"bad_key": True}),
    # A platform key (bound to no tenant) names the tenant with X-Tenant-ID.
    ("/api/v1/config/db.url", {"platform": True, "HTTP_X_TENANT_ID": "acme"}),
    ("/api/v1/config/db.url?environment=production&service_name=svc", {"platform": True, "HTTP_X_TENANT_ID": "acme"}),
    ("/api/v1/config/db.url", {"platform": True, "HTTP_X_TENANT_ID": "globex"}),
    ("/api/v1/config/db.url", {"platform": True, "HTTP_X_TENANT_ID": "nobody"}),
    ("/api/v1/config/db.url", {"platform": True, "HTTP_X_TENANT_ID": ""}),
    ("/api/v1/config/db.url", {"platform": True}),
    ("/api/v1/config/db.password", {"platform": True, "HTTP_X_TENANT_ID": "acme"}),
    ("/api/v1/config/db.password", {"platform": True, "reveal": True, "HTTP_X_TENANT_ID": "acme"}),
    ("/api/v1/config/db.url", {"HTTP_X_TENANT_ID": "acme"}),
])
def test_lean_route__same_answer_as_the_drf_view(data, tenant, make_key, path, headers):
    from tenants.api.views import configs as views

    headers = dict(headers)
    scopes = headers.pop("scopes", ["configs:read"] + (["secrets:read"] if headers.pop("reveal", False) else []))
    raw = make_key(tenant=None if headers.pop("platform", False) else tenant, scopes=scopes)
    if headers.pop("bad_key", False):
        raw = raw[:-4] + "xxxx"
    directory.api_key_principal(raw_key=raw)  # cached, as after the key's first request: the lean path may answer
    scheme = "Bearer" if headers.pop("bearer", False) else "ApiKey"
    key = path.split("?")[0].rsplit("/", 1)[1]
    factory = RequestFactory()

    lean = _answer(views.config_key_route, factory.get(path, HTTP_AUTHORIZATION=f"{scheme} {raw}", **headers), key)
    drf = _answer(views._config_key_view, factory.get(path, HTTP_AUTHORIZATION=f"{scheme} {raw}", **headers), key)

    assert lean == drf
    if headers.get("HTTP_X_TENANT_ID") != "globex":
        assert "THEIRS" not in json.dumps(lean[1])


@pytest.mark.parametrize("bound,tenant_header", [(True, None), (True, "acme"), (False, "acme")])
def test_lean_route__platform_key_with_x_tenant_id__served_without_the_drf_view(
        data, tenant, make_key, monkeypatch, bound, tenant_header):
    from tenants.api.views import configs as views

    raw = make_key(tenant=tenant if bound else None, scopes=["configs:read"])
    directory.api_key_principal(raw_key=raw)
    monkeypatch.setattr(views.ConfigKeyView, "get", lambda *a, **k: pytest.fail("handed to the DRF view"))
    extra = {"HTTP_X_TENANT_ID": tenant_header} if tenant_header else {}

    response = views.config_key_route(RequestFactory().get("/api/v1/config/db.url", HTTP_AUTHORIZATION=f"ApiKey {raw}",
                                                           **extra), key="db.url")

    assert (response.status_code, json.loads(response.content)["value"]) == (200, "tenant")


def test_lean_route__304_and_etag_match_the_drf_view(data, tenant, make_key):
    from tenants.api.views import configs as views

    raw = make_key(tenant=tenant, scopes=["configs:read"])
    factory = RequestFactory()
    auth = {"HTTP_AUTHORIZATION": f"ApiKey {raw}"}
    _, _, etag = _answer(views._config_key_view, factory.get("/api/v1/config/db.url", **auth), "db.url")

    lean = views.config_key_route(factory.get("/api/v1/config/db.url", HTTP_IF_NONE_MATCH=etag, **auth), key="db.url")

    assert (lean.status_code, lean["ETag"], lean.content) == (304, etag, b"")


def test_lean_route__throttled__429_with_retry_after(data, tenant, make_key, client_for, settings, clock):
    settings.API_THROTTLE_RATE = "2/min"
    client = client_for(make_key(tenant=tenant, scopes=["configs:read"]))
    clock.advance(20)  # 40 s left in the window

    answers = [client.get("/api/v1/config/db.url") for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2]["Retry-After"] == "41"  # the seconds left in the window, rounded up
