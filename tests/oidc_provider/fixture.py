"""pytest fixtures: the test OpenID provider in a subprocess, and the hub configured for it.

``oidc_provider`` (session): started once on a free port with its own SQLite and
RSA key, its client being the hub's live server. ``sso`` (per test): the hub's
settings pointing at it, the users file reset, and helpers to change a user's
groups at the provider and to sign in without a browser (``requests``).
"""
from __future__ import annotations

import json
import re
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.waiting import serving

REPO = Path(__file__).resolve().parents[2]
CLIENT_ID, CLIENT_SECRET = "config-hub", "test-client-secret-not-real-0123456789"
USERS = {
    "alice": {"password": "alice-idp-pw-1", "email": "alice@corp.example", "groups": ["hub-staging-editors"]},
    "root": {"password": "root-idp-pw-1", "email": "root@corp.example", "groups": ["hub-admins"]},
}
GROUP_MAP = {"hub-staging-editors": "staging-editors", "hub-approvers": "approvers"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Provider:
    base: str
    users_file: Path

    def set_groups(self, username: str, groups: list[str]) -> None:
        """Change a user's groups at the provider: read at the next sign-in."""
        users = json.loads(self.users_file.read_text())
        users[username]["groups"] = groups
        self.users_file.write_text(json.dumps(users))


@pytest.fixture(scope="session")
def oidc_provider(live_server, tmp_path_factory):
    home = tmp_path_factory.mktemp("oidc-provider")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (home / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    users_file = home / "users.json"
    users_file.write_text(json.dumps(USERS))
    port = _free_port()
    client = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uri": f"{live_server.url}/oidc/callback/"}
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "OP_DATABASE": str(home / "op.sqlite3"),
           "OP_RSA_KEY_FILE": str(home / "key.pem"), "OP_USERS_FILE": str(users_file)}
    base = f"http://127.0.0.1:{port}"
    with serving([sys.executable, "-m", "tests.oidc_provider", str(port), json.dumps(client)], base=base, cwd=REPO,
                 env=env, log_path=home / "provider.log"):
        yield Provider(base=base, users_file=users_file)


@pytest.fixture
def sso(oidc_provider, settings, transactional_db):
    """The hub signed up with the test provider; the provider's users as in USERS."""
    oidc_provider.users_file.write_text(json.dumps(USERS))
    base = f"{oidc_provider.base}/o"
    settings.OIDC_ENABLED = True
    settings.OIDC_RP_CLIENT_ID, settings.OIDC_RP_CLIENT_SECRET = CLIENT_ID, CLIENT_SECRET
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = f"{base}/authorize/"
    settings.OIDC_OP_TOKEN_ENDPOINT = f"{base}/token/"
    settings.OIDC_OP_USER_ENDPOINT = f"{base}/userinfo/"
    settings.OIDC_OP_JWKS_ENDPOINT = f"{base}/.well-known/jwks.json"
    settings.OIDC_GROUP_MAP = dict(GROUP_MAP)
    return oidc_provider


def sign_in(hub_url: str, username: str, password: str) -> tuple[requests.Session, requests.Response]:
    """The browser's way through the provider, with ``requests``: the hub's SSO button,
    the provider's login form, back to the hub's callback. Returns the session and
    the last answer (the admin's page when it worked)."""
    session = requests.Session()
    login_page = session.get(f"{hub_url}/oidc/authenticate/?next=/admin/", timeout=10)
    assert "Test identity provider" in login_page.text, login_page.text[:500]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text).group(1)
    answer = session.post(login_page.url, data={"username": username, "password": password,
                                                "csrfmiddlewaretoken": token}, timeout=10)
    return session, answer
