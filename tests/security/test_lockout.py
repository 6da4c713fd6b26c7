"""Brute force on the admin login: django-axes (switched on for these tests) locks
out a username from an address, and an address spraying usernames; a locked-out
operator gets no API token either; the client address comes from a trusted proxy
only when one is configured."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


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

    assert r.status_code == 401, r.content[:300]
    assert r.json()["error"]["code"] == "not_authenticated" and "access" not in r.json()
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
