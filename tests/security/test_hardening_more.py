"""Hardening seen from outside: admin brute force locked out by django-axes (on for
the test), throttling per operator (JWT user), CORS closed unless configured."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


# --- brute force on the admin login (django-axes) ------------------------------------------------


@pytest.fixture
def axes_on(settings):
    """Axes reads AXES_ENABLED at every request (middleware, backend, signal handlers);
    the handler is memoised, so it is rebuilt for a clean start and after the test."""
    from axes.handlers.proxy import AxesProxyHandler

    settings.AXES_ENABLED = True
    AxesProxyHandler.get_implementation(force=True)
    yield settings
    AxesProxyHandler.get_implementation(force=True)


@pytest.fixture
def operators(django_user_model):
    alice = django_user_model.objects.create_superuser("alice", "alice@example.com", "alice-right-pw")
    bob = django_user_model.objects.create_superuser("bob", "bob@example.com", "bob-right-pw")
    return alice, bob


def _admin_login(client, username, password):
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password})


def _logged_in(client) -> bool:
    return client.get("/admin/").status_code == 200


def test_axes__failure_limit_reached__right_password_refused_other_user_unaffected(axes_on, operators):
    from django.test import Client

    limit = axes_on.AXES_FAILURE_LIMIT
    assert limit >= 1 and axes_on.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"], "ip_address"]
    attacker = Client()

    failures = [_admin_login(attacker, "alice", f"wrong-{i}").status_code for i in range(limit)]
    locked = _admin_login(attacker, "alice", "alice-right-pw")
    bob_client = Client()
    bob = _admin_login(bob_client, "bob", "bob-right-pw")

    assert failures[:-1] == [200] * (limit - 1)  # the login form again, with its error
    assert locked.status_code == 429, locked.content[:300]
    assert b"locked" in locked.content.lower()
    assert not _logged_in(attacker)
    # Lockout is by username and IP: bob, from the same address, signs in.
    assert bob.status_code == 302 and _logged_in(bob_client)


def test_axes__below_the_limit__right_password_accepted(axes_on, operators, client):
    for i in range(axes_on.AXES_FAILURE_LIMIT - 1):
        _admin_login(client, "alice", f"wrong-{i}")

    r = _admin_login(client, "alice", "alice-right-pw")

    assert r.status_code == 302 and _logged_in(client)


def test_axes__locked_out_operator__no_api_token_either(axes_on, operators, client):
    from rest_framework.test import APIClient

    for i in range(axes_on.AXES_FAILURE_LIMIT):
        _admin_login(client, "alice", f"wrong-{i}")

    r = APIClient().post("/api/v1/auth/token/", {"username": "alice", "password": "alice-right-pw"}, format="json")
    bob = APIClient().post("/api/v1/auth/token/", {"username": "bob", "password": "bob-right-pw"}, format="json")

    assert r.status_code in (401, 403, 429), r.content[:300]
    assert "access" not in (r.json() if r.headers.get("Content-Type", "").startswith("application/json") else {})
    assert bob.status_code == 200 and bob.json()["access"]


def test_axes__spraying_usernames_from_one_address__address_locked_others_unaffected(axes_on, operators):
    from django.test import Client

    ip_limit, limit = axes_on.AXES_IP_FAILURE_LIMIT, axes_on.AXES_FAILURE_LIMIT
    assert ip_limit > limit
    sprayer, elsewhere = Client(REMOTE_ADDR="203.0.113.9"), Client(REMOTE_ADDR="198.51.100.7")

    # Each username gets fewer tries than the per-user limit: only the per-address rule can stop it.
    failures = [_admin_login(sprayer, f"user{i % 10}", "Winter2026!").status_code for i in range(ip_limit)]
    alice_from_sprayer = _admin_login(sprayer, "alice", "alice-right-pw")
    alice_elsewhere = _admin_login(elsewhere, "alice", "alice-right-pw")

    assert failures[:-1] == [200] * (ip_limit - 1) and failures[-1] == 429
    assert alice_from_sprayer.status_code == 429 and not _logged_in(sprayer)
    assert alice_elsewhere.status_code == 302 and _logged_in(elsewhere)


def test_axes__behind_a_trusted_proxy__attacker_cannot_lock_out_an_operator_elsewhere(axes_on, operators):
    from django.test import Client

    axes_on.TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.2"  # every request reaches the hub from the proxy
    attacker = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="203.0.113.9")
    # The attacker's own X-Forwarded-For entries are left of what the proxy appends: ignored.
    spoofing = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="198.51.100.7, 203.0.113.9")
    alice = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="198.51.100.7")

    for i in range(axes_on.AXES_FAILURE_LIMIT):
        _admin_login(attacker if i % 2 else spoofing, "alice", f"wrong-{i}")
    attacker_right_pw = _admin_login(attacker, "alice", "alice-right-pw")
    alice_right_pw = _admin_login(alice, "alice", "alice-right-pw")

    assert attacker_right_pw.status_code == 429
    assert alice_right_pw.status_code == 302 and _logged_in(alice)


def test_axes__no_trusted_proxy__forwarded_for_ignored_attacker_still_locked(axes_on, operators):
    from django.test import Client

    assert axes_on.TRUSTED_PROXY_COUNT == 0
    for i in range(axes_on.AXES_FAILURE_LIMIT):
        _admin_login(Client(REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}"), "alice", f"wrong-{i}")

    r = _admin_login(Client(REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="192.0.2.200"), "alice", "alice-right-pw")

    assert r.status_code == 429


def test_axes__disabled_in_test_settings__many_failures_never_lock(operators, client, settings):
    assert settings.AXES_ENABLED is False
    for i in range(settings.AXES_FAILURE_LIMIT + 2):
        _admin_login(client, "alice", f"wrong-{i}")

    assert _admin_login(client, "alice", "alice-right-pw").status_code == 302


def _away_from_window_edge(window: int = 60) -> None:
    """The throttle counts in fixed windows: start well inside one, so a window
    boundary never falls between the requests of a test."""
    import time

    left = window - time.time() % window
    if left < 5:
        time.sleep(left + 0.1)


# --- throttling per operator ------------------------------------------------------------------


def _operator_client(username, password):
    from rest_framework.test import APIClient

    api = APIClient()
    token = api.post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")
    assert token.status_code == 200, token.content
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token.json()['access']}")
    return api


def test_throttle__operator_jwt_over_the_rate__429_retry_after_other_operator_not_throttled(settings, operators, tenant):
    alice = _operator_client("alice", "alice-right-pw")
    bob = _operator_client("bob", "bob-right-pw")
    settings.API_THROTTLE_RATE = "3/min"
    _away_from_window_edge()

    codes = [alice.get("/api/v1/configs/").status_code for _ in range(4)]
    again = alice.get("/api/v1/configs/")
    bob_codes = [bob.get("/api/v1/configs/").status_code for _ in range(3)]

    assert codes == [200, 200, 200, 429]
    assert again.status_code == 429
    assert 1 <= int(again["Retry-After"]) <= 61
    assert again.json()["error"]["code"] == "throttled"
    assert bob_codes == [200, 200, 200]


def test_throttle__operator_and_api_key__separate_budgets(settings, operators, tenant, make_key, client_for):
    alice = _operator_client("alice", "alice-right-pw")
    key = client_for(make_key(tenant=tenant, scopes=["configs:read"]))
    settings.API_THROTTLE_RATE = "2/min"
    _away_from_window_edge()

    assert [alice.get("/api/v1/configs/").status_code for _ in range(3)] == [200, 200, 429]
    assert [key.get("/api/v1/configs/").status_code for _ in range(2)] == [200, 200]


# --- CORS -----------------------------------------------------------------------------------------


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
