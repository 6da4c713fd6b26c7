"""Single sign-on against a real OpenID provider (tests/oidc_provider, in a subprocess):
users created as staff without a password, their groups following the provider's
group claim at every sign-in, and password login that can be turned off."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from tenants.models import Environment, RoleAssignment
from tenants.roles import role_allows
from tests import factories as make
from tests.conftest import ensure_builtin_rows
from tests.oidc_provider.fixture import sign_in


def _groups(username: str) -> list[str]:
    return sorted(get_user_model().objects.get(username=username).groups.values_list("name", flat=True))


@pytest.fixture
def staging_role():
    """The Django group the provider's ``hub-staging-editors`` maps to: editor of acme's staging."""
    ensure_builtin_rows()
    tenant = make.tenant("acme")
    group = Group.objects.create(name="staging-editors")
    RoleAssignment.objects.create(group=group, role="editor", tenant=tenant, environment=Environment.objects.get(slug="staging"))
    return tenant


def test_sign_in__first_time__staff_user_without_password_in_the_mapped_group(sso, live_server, staging_role):
    _, answer = sign_in(live_server.url, "alice", "alice-idp-pw-1")

    alice = get_user_model().objects.get(username="alice")
    assert (answer.status_code, answer.url) == (200, f"{live_server.url}/admin/")
    assert "Site administration" in answer.text or "Operations" in answer.text
    assert (alice.is_staff, alice.is_superuser, alice.has_usable_password(), alice.email) == (
        True, False, False, "alice@corp.example")
    assert _groups("alice") == ["staging-editors"]
    staging = Environment.objects.get(slug="staging")
    assert role_allows(user_id=alice.pk, tenant=staging_role, environment=staging, role="editor") is True


def test_sign_in__groups_changed_at_the_provider__follow_at_the_next_sign_in(sso, live_server, staging_role):
    sign_in(live_server.url, "alice", "alice-idp-pw-1")
    alice = get_user_model().objects.get(username="alice")
    alice.groups.add(Group.objects.create(name="given-by-hand"))  # not managed by single sign-on
    staging = Environment.objects.get(slug="staging")

    sso.set_groups("alice", ["hub-approvers", "unmapped-group"])
    _, answer = sign_in(live_server.url, "alice", "alice-idp-pw-1")

    assert answer.url == f"{live_server.url}/admin/"
    assert _groups("alice") == ["approvers", "given-by-hand"]
    assert role_allows(user_id=alice.pk, tenant=staging_role, environment=staging, role="editor") is False

    sso.set_groups("alice", ["hub-staging-editors"])
    sign_in(live_server.url, "alice", "alice-idp-pw-1")

    assert _groups("alice") == ["given-by-hand", "staging-editors"]
    assert role_allows(user_id=alice.pk, tenant=staging_role, environment=staging, role="editor") is True


def test_sign_in__superuser_groups__superuser_decided_at_each_sign_in(sso, live_server, settings):
    settings.OIDC_SUPERUSER_GROUPS = ["hub-admins"]

    sign_in(live_server.url, "root", "root-idp-pw-1")
    assert get_user_model().objects.get(username="root").is_superuser is True

    sso.set_groups("root", [])
    sign_in(live_server.url, "root", "root-idp-pw-1")
    assert get_user_model().objects.get(username="root").is_superuser is False


def test_sign_in__local_account_with_a_password_of_that_name__refused_untouched(sso, live_server, django_user_model):
    django_user_model.objects.create_user("alice", password="local-alice-pw-1", is_staff=False)

    session, answer = sign_in(live_server.url, "alice", "alice-idp-pw-1")

    assert answer.url == f"{live_server.url}/admin/login/?sso=failed"
    assert "Single sign-on did not sign you in" in answer.text
    alice = django_user_model.objects.get(username="alice")
    assert (alice.is_staff, _groups("alice")) == (False, [])
    assert session.get(f"{live_server.url}/admin/", timeout=10).url.startswith(f"{live_server.url}/admin/login/")


def test_login_page__sso_configured__button_beside_the_password_form(sso, client):
    page = client.get("/admin/login/").content.decode()

    assert 'id="sso-login-button"' in page
    assert "/oidc/authenticate/?next=" in page
    assert 'name="password"' in page


def test_password_login_off__only_the_sso_button__no_password_signs_in(sso, client, settings, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    settings.PASSWORD_LOGIN = False

    page = client.get("/admin/login/").content.decode()
    posted = client.post("/admin/login/?next=/admin/", {"username": "root", "password": "pw-root-123"})
    token = APIClient().post("/api/v1/auth/token/", {"username": "root", "password": "pw-root-123"}, format="json")

    assert 'id="sso-login-button"' in page
    assert 'name="password"' not in page
    assert posted.status_code == 200  # the login page again, not a redirect into the admin
    assert client.get("/admin/").status_code == 302
    assert token.status_code == 401


def test_sso_not_configured__its_routes_are_404(db, client, settings):
    settings.OIDC_ENABLED = False

    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404
    assert 'id="sso-login-button"' not in client.get("/admin/login/").content.decode()


def test_sign_in__issuer_only__endpoints_from_its_discovery_document(sso, live_server, settings, monkeypatch):
    from config_hub import sso as hub_sso

    monkeypatch.setattr(hub_sso, "_discovered", {})
    settings.OIDC_OP_ISSUER = f"{sso.base}/o"
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = settings.OIDC_OP_TOKEN_ENDPOINT = ""
    settings.OIDC_OP_USER_ENDPOINT = settings.OIDC_OP_JWKS_ENDPOINT = ""

    _, answer = sign_in(live_server.url, "alice", "alice-idp-pw-1")

    assert answer.url == f"{live_server.url}/admin/"
    assert get_user_model().objects.filter(username="alice", is_staff=True).exists()


def test_sign_in__issuer_unreachable__back_to_the_login_page_with_the_reason(sso, client, settings, monkeypatch):
    import socket

    from config_hub import sso as hub_sso

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(hub_sso, "_discovered", {})
    settings.OIDC_OP_ISSUER = f"http://127.0.0.1:{port}/o"
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = ""

    answer = client.get("/oidc/authenticate/?next=/admin/", follow=True)

    assert answer.redirect_chain[0] == ("/admin/login/?sso=failed", 302)
    assert "Single sign-on did not sign you in" in answer.content.decode()


@pytest.mark.parametrize(("variables", "message"), [
    ({"PASSWORD_LOGIN": "false"}, "PASSWORD_LOGIN=false needs single sign-on"),
    ({"OIDC_RP_CLIENT_ID": "hub"}, "single sign-on also needs OIDC_RP_CLIENT_SECRET, OIDC_OP_AUTHORIZATION_ENDPOINT"),
    ({"OIDC_RP_CLIENT_ID": "hub", "OIDC_RP_CLIENT_SECRET": "s", "OIDC_OP_ISSUER": "https://id.example.com"}, None),
    ({"OIDC_GROUP_MAP": "hub-admins"}, "OIDC_GROUP_MAP: 'hub-admins' is not 'name=value'"),
])
def test_settings__single_sign_on_misconfigured__the_hub_refuses_to_start(variables, message, tmp_path):
    import os
    import subprocess
    import sys

    from django.conf import settings as django_settings

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OIDC_", "PASSWORD_LOGIN"))}
    env.update({"DJANGO_SETTINGS_MODULE": "config_hub.settings.base", "CONFIG_HUB_VAR_DIR": str(tmp_path), **variables})
    started = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, cwd=django_settings.BASE_DIR,
                             capture_output=True, text=True)

    if message is None:
        assert started.returncode == 0, started.stderr[-2000:]
    else:
        assert started.returncode != 0
        assert message in started.stderr
