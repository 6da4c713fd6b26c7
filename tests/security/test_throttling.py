"""Throttling per credential: API_THROTTLE_RATE requests per fixed window for each
API key and each operator (JWT user), answered 429 with Retry-After past it.

The counter is per wall-clock window, so every test here runs on the ``clock``
fixture: frozen at the start of a window, moved on with ``clock.advance``."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def operators(django_user_model):
    alice = django_user_model.objects.create_superuser("alice", "alice@example.com", "alice-right-pw")
    bob = django_user_model.objects.create_superuser("bob", "bob@example.com", "bob-right-pw")
    return alice, bob


def _operator_client(username, password):
    from rest_framework.test import APIClient

    api = APIClient()
    token = api.post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")
    assert token.status_code == 200, token.content
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token.json()['access']}")
    return api


def test_throttle__key_over_its_rate__answers_429_with_retry_after(settings, tenant, make_key, client_for, clock):
    settings.API_THROTTLE_RATE = "3/min"
    client = client_for(make_key(tenant=tenant, scopes=["configs:read"]))
    clock.advance(10)  # 50 s left in the window

    codes = [client.get("/api/v1/configs/").status_code for _ in range(4)]

    assert codes == [200, 200, 200, 429]
    response = client.get("/api/v1/configs/")
    assert response.status_code == 429
    assert response["Retry-After"] == "51"  # the seconds left in the window, rounded up
    assert response.json()["error"]["code"] == "throttled"


def test_throttle__two_keys__each_has_its_own_budget(settings, tenant, make_key, client_for, clock):
    settings.API_THROTTLE_RATE = "2/min"
    first = client_for(make_key(tenant=tenant, scopes=["configs:read"], name="first"))
    second = client_for(make_key(tenant=tenant, scopes=["configs:read"], name="second"))

    assert [first.get("/api/v1/configs/").status_code for _ in range(3)] == [200, 200, 429]
    assert second.get("/api/v1/configs/").status_code == 200


def test_throttle__window_ends__full_budget_again(settings, tenant, make_key, client_for, clock):
    settings.API_THROTTLE_RATE = "2/min"
    client = client_for(make_key(tenant=tenant, scopes=["configs:read"]))
    clock.advance(30)

    spent = [client.get("/api/v1/configs/").status_code for _ in range(3)]
    clock.advance(29)
    still_spent = client.get("/api/v1/configs/")
    clock.advance(1)  # the next window begins
    renewed = [client.get("/api/v1/configs/").status_code for _ in range(3)]

    assert spent == [200, 200, 429]
    assert (still_spent.status_code, still_spent["Retry-After"]) == (429, "2")
    assert renewed == [200, 200, 429]


def test_throttle__operator_jwt_over_the_rate__429_retry_after_other_operator_not_throttled(
    settings, operators, tenant, clock
):
    alice = _operator_client("alice", "alice-right-pw")
    bob = _operator_client("bob", "bob-right-pw")
    settings.API_THROTTLE_RATE = "3/min"

    codes = [alice.get("/api/v1/configs/").status_code for _ in range(4)]
    again = alice.get("/api/v1/configs/")
    bob_codes = [bob.get("/api/v1/configs/").status_code for _ in range(3)]

    assert codes == [200, 200, 200, 429]
    assert again.status_code == 429
    assert again["Retry-After"] == "61"  # at the very start of the window: 60 s left, rounded up
    assert again.json()["error"]["code"] == "throttled"
    assert bob_codes == [200, 200, 200]


def test_throttle__operator_and_api_key__separate_budgets(settings, operators, tenant, make_key, client_for, clock):
    alice = _operator_client("alice", "alice-right-pw")
    key = client_for(make_key(tenant=tenant, scopes=["configs:read"]))
    settings.API_THROTTLE_RATE = "2/min"

    assert [alice.get("/api/v1/configs/").status_code for _ in range(3)] == [200, 200, 429]
    assert [key.get("/api/v1/configs/").status_code for _ in range(2)] == [200, 200]
