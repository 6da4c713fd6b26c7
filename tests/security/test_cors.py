"""CORS: closed unless CORS_ALLOWED_ORIGINS names the origin; a look-alike origin is not it."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_cors__no_origins_configured__no_allow_origin_header(tenant, make_key, client_for):
    client = client_for(make_key(tenant=tenant, scopes=["configs:read"]))

    response = client.get("/api/v1/configs/", HTTP_ORIGIN="https://evil.example")

    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response


def test_cors__closed_by_default__no_allow_origin_even_on_preflight(tenant, make_key, client_for):
    client = client_for(make_key(tenant=tenant, scopes=["configs:read"]))

    get = client.get("/api/v1/configs/", HTTP_ORIGIN="https://ops.example.com")
    preflight = client.options("/api/v1/configs/", HTTP_ORIGIN="https://ops.example.com",
                               HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
                               HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization")

    assert get.status_code == 200
    assert "Access-Control-Allow-Origin" not in get
    assert "Access-Control-Allow-Origin" not in preflight


def test_cors__configured_origin__allowed_other_origin_not(settings, tenant, make_key, client_for):
    settings.CORS_ALLOWED_ORIGINS = ["https://ops.example.com"]
    client = client_for(make_key(tenant=tenant, scopes=["configs:read"]))

    allowed = client.get("/api/v1/configs/", HTTP_ORIGIN="https://ops.example.com")
    preflight = client.options("/api/v1/configs/", HTTP_ORIGIN="https://ops.example.com",
                               HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
                               HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization")
    foreign = client.get("/api/v1/configs/", HTTP_ORIGIN="https://evil.example")
    lookalike = client.get("/api/v1/configs/", HTTP_ORIGIN="https://ops.example.com.evil.example")

    assert allowed["Access-Control-Allow-Origin"] == "https://ops.example.com"
    assert preflight["Access-Control-Allow-Origin"] == "https://ops.example.com"
    assert "authorization" in preflight["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Origin" not in foreign
    assert "Access-Control-Allow-Origin" not in lookalike
