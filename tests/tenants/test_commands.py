"""Management commands and production settings, run as an operator would run them."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_create_api_key__prints_only_the_key__and_it_works(tenant, client_for):
    from tenants.services import config_create

    config_create(tenant=tenant, key="k", value=1, actor="t")
    out = io.StringIO()

    call_command("create_api_key", "--name", "ci", "--tenant", "acme", "--scopes", "configs:read", stdout=out)

    raw = out.getvalue().strip()
    assert raw.startswith("chk_") and "\n" not in raw
    assert client_for(raw).get("/api/v1/config/k").json()["value"] == 1


@pytest.mark.django_db
def test_create_api_key__unknown_scope__refused(tenant):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="unknown scope"):
        call_command("create_api_key", "--name", "ci", "--all-tenants", "--scopes", "configs:delete", stdout=io.StringIO())


@pytest.mark.django_db
def test_seed_demo__printed_login__logs_into_the_admin(client):
    out = io.StringIO()

    call_command("seed_demo", stdout=out)

    login_line = next(line for line in out.getvalue().splitlines() if line.startswith("admin login:"))
    username, password = login_line.split(":", 1)[1].strip().split(" / ")
    assert client.login(username=username, password=password)
    assert client.get("/admin/").status_code == 200


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "FERNET_KEYS", "DJANGO_DEBUG")}
    base.update(env)
    base["DJANGO_SETTINGS_MODULE"] = "config_hub.settings.base"
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=base, capture_output=True, text=True, timeout=120)


def test_production__without_secret_key__refuses_to_start():
    result = _manage("check", env={"DJANGO_DEBUG": "false"})

    assert result.returncode != 0
    assert "DJANGO_DEBUG=false needs SECRET_KEY" in result.stderr


def test_production__with_secrets__check_deploy_has_no_warning():
    from cryptography.fernet import Fernet

    result = _manage("check", "--deploy", env={
        "DJANGO_DEBUG": "false", "SECRET_KEY": "x" * 20 + "-production-secret-key-0123456789abcdef",
        "FERNET_KEYS": Fernet.generate_key().decode(), "ALLOWED_HOSTS": "hub.example.com",
    })

    assert result.returncode == 0, result.stderr[-2000:]
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_settings__bad_boolean__refuses_loudly():
    result = _manage("check", env={"DJANGO_DEBUG": "maybe"})

    assert result.returncode != 0
    assert "DJANGO_DEBUG='maybe' is not a boolean" in result.stderr
