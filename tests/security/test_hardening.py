"""Hardening: the request body size limit, one signing secret per purpose.

Throttling is in test_throttling.py, CORS in test_cors.py, the login lockout in
test_lockout.py."""
import pytest

pytestmark = pytest.mark.django_db


def test_body_limit__request_over_max_bytes__refused_with_json_413(settings, tenant, make_key, client_for):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    client = client_for(make_key(tenant=tenant, scopes=["configs:write"]))

    response = client.post("/api/v1/config/", {"key": "big", "value": "x" * 5000}, format="json")

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


# --- one secret per purpose -------------------------------------------------------------------------


def test_signing_secrets__development__derived_per_purpose_all_different(settings):
    secrets = [settings.SECRET_KEY, settings.SIMPLE_JWT["SIGNING_KEY"], settings.SERVICE_JWT_SECRET]

    assert len(set(secrets)) == 3
    assert sorted(settings.DERIVED_SECRETS) == ["JWT_SIGNING_KEY", "SERVICE_JWT_SECRET"]


def test_operator_jwt__forged_with_the_service_token_secret__401(admin_user, tenant):
    import time

    import jwt
    from django.conf import settings
    from rest_framework.test import APIClient
    from rest_framework_simplejwt.tokens import AccessToken

    claims = {"token_type": "access", "user_id": str(admin_user.pk), "exp": int(time.time()) + 600, "jti": "forged"}
    forged = jwt.encode(claims, settings.SERVICE_JWT_SECRET, algorithm="HS256")
    by_django_key = jwt.encode({**claims, "jti": "forged-2"}, settings.SECRET_KEY, algorithm="HS256")
    genuine = str(AccessToken.for_user(admin_user))

    answers = [APIClient().get("/api/v1/configs/", HTTP_AUTHORIZATION=f"Bearer {token}") for token in (forged, by_django_key, genuine)]

    assert [r.status_code for r in answers] == [401, 401, 200]
    assert answers[0].json()["error"]["code"] == "not_authenticated"
