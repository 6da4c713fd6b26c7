"""Management commands and production settings, run as an operator would run them."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from tests import factories as make

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_create_api_key__prints_only_the_key__and_it_works(tenant, client_for):
    make.config(tenant, "k", 1)
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


_SIGNING_ENV = ("SECRET_KEY", "FERNET_KEYS", "DJANGO_DEBUG", "JWT_SIGNING_KEY", "SERVICE_JWT_SECRET",
                "SERVICE_JWT_SHARED_SECRET_TENANT")


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in _SIGNING_ENV}
    base.update(env)
    base["DJANGO_SETTINGS_MODULE"] = "config_hub.settings.base"
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=base, capture_output=True, text=True, timeout=120)


def test_production__without_secret_key__refuses_to_start():
    result = _manage("check", env={"DJANGO_DEBUG": "false"})

    assert result.returncode != 0
    assert "DJANGO_DEBUG=false needs SECRET_KEY" in result.stderr


def _production_env(**changes: str) -> dict[str, str]:
    from cryptography.fernet import Fernet

    env = {
        "DJANGO_DEBUG": "false", "SECRET_KEY": "x" * 20 + "-production-secret-key-0123456789abcdef",
        "JWT_SIGNING_KEY": "operators-jwt-signing-key-0123456789abcdef",
        "SERVICE_JWT_SECRET": "seed-004-service-token-secret-0123456789",
        "FERNET_KEYS": Fernet.generate_key().decode(), "ALLOWED_HOSTS": "hub.example.com",
    }
    env.update(changes)
    return {k: v for k, v in env.items() if v is not None}


def test_production__with_secrets__check_deploy_has_no_warning():
    result = _manage("check", "--deploy", env=_production_env())

    assert result.returncode == 0, result.stderr[-2000:]
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.parametrize("missing", ["JWT_SIGNING_KEY", "SERVICE_JWT_SECRET"])
def test_production__signing_secret_unset__refuses_to_start_naming_it(missing):
    result = _manage("check", env=_production_env(**{missing: None}))

    assert result.returncode != 0
    assert (f"ImproperlyConfigured: DJANGO_DEBUG=false: config_hub.E001: {missing} is not set: in production every "
            "signing secret is set on its own (it is never taken from SECRET_KEY)") in result.stderr


@pytest.mark.parametrize("a,b", [("SECRET_KEY", "JWT_SIGNING_KEY"), ("SECRET_KEY", "SERVICE_JWT_SECRET"),
                                 ("JWT_SIGNING_KEY", "SERVICE_JWT_SECRET")])
def test_production__two_signing_secrets_equal__refuses_to_start(a, b):
    shared = "one-secret-for-two-purposes-0123456789abcdef-xyz"

    result = _manage("check", env=_production_env(**{a: shared, b: shared}))

    assert result.returncode != 0
    assert f"config_hub.E002: {a} and {b} are the same secret" in result.stderr


def test_production__shared_service_secret_switched_off__starts_without_service_jwt_secret():
    result = _manage("check", "--deploy", env=_production_env(SERVICE_JWT_SECRET=None, SERVICE_JWT_SHARED_SECRET_TENANT=""))

    assert result.returncode == 0, result.stderr[-2000:]


def test_check_deploy__development_derived_secrets__reports_why_with_check_ids():
    result = _manage("check", "--deploy", env={"DJANGO_DEBUG": "true", "JWT_SIGNING_KEY": "dev-jwt-key-0123456789abcdef-0123"})

    assert result.returncode != 0
    assert ("(config_hub.E001) SERVICE_JWT_SECRET is not set: in production every signing secret is set on its own "
            "(it is never taken from SECRET_KEY)") in result.stderr
    assert "(config_hub.E001) JWT_SIGNING_KEY" not in result.stderr


def test_settings__bad_boolean__refuses_loudly():
    result = _manage("check", env={"DJANGO_DEBUG": "maybe"})

    assert result.returncode != 0
    assert "DJANGO_DEBUG='maybe' is not a boolean" in result.stderr


@pytest.mark.django_db
def test_create_api_key__all_tenants__platform_key_reads_any_tenant(tenant, client_for):
    make.config(tenant, "k", "acme's")
    out, err = io.StringIO(), io.StringIO()

    call_command("create_api_key", "--name", "platform", "--all-tenants", "--scopes", "configs:read, admin", stdout=out, stderr=err)

    raw = out.getvalue().strip()
    assert err.getvalue() == "" and out.getvalue() == raw + "\n"
    platform = client_for(raw)
    assert platform.get("/config/tenants/acme/configs/k").json()["config_value"] == "acme's"
    assert platform.get("/config/configs/k/all-tenants").status_code == 200


@pytest.mark.django_db
def test_seed_demo__printed_tenant_key__reads_the_readme_examples(client_for):
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    line = next(line for line in out.getvalue().splitlines() if line.startswith("demo API key (tenant123):"))
    api = client_for()
    api.credentials(HTTP_AUTHORIZATION=f"ApiKey {line.split(':', 1)[1].strip()}")

    config = api.get("/api/v1/config/database.url?environment=development&service_name=user-service")
    flag = api.post("/api/v1/feature-flags/evaluate",
                    {"flag_name": "new_payment_flow", "environment": "production", "user_id": "user123"}, format="json")
    again = io.StringIO()
    call_command("seed_demo", stdout=again)

    assert (config.status_code, config.json()["value"]) == (200, "postgresql://localhost:5432/users_dev")
    assert config.json()["source"] == "tenant+environment+service"
    assert flag.status_code == 200 and isinstance(flag.json()["enabled"], bool)
    assert "chk_" not in again.getvalue() and "shown only then" in again.getvalue()


@pytest.mark.django_db
def test_seed_demo__printed_service_token_secret__signs_a_heartbeat_of_the_demo_tenant(client_for):
    import jwt

    from tenants.models import Tenant

    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    line = next(line for line in out.getvalue().splitlines() if line.startswith("service-token secret (tenant123, kid "))
    kid = line.split("kid ", 1)[1].split(")", 1)[0]
    secret = line.split("): ", 1)[1].strip()
    instance = make.instance(Tenant.objects.get(slug="tenant123"), "user-service", "http://user-service:8080")
    again = io.StringIO()
    call_command("seed_demo", stdout=again)

    for headers in ({"kid": kid}, None):  # named by its kid, or found among the tenant's secrets
        token = jwt.encode({"service_id": instance.pk}, secret, algorithm="HS256", headers=headers)
        beat = client_for(token, scheme="Bearer").post("/heartbeat", {"service_id": instance.pk}, format="json")
        assert beat.status_code == 200, beat.json()
    assert "service-token secret" not in again.getvalue()  # shown once


@pytest.mark.django_db
def test_seed_demo__printed_login__passes_the_admin_login_form_and_runs_twice(client):
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=io.StringIO(), password=None)  # idempotent; a new password each run
    second = io.StringIO()
    call_command("seed_demo", stdout=second)

    login_line = next(line for line in second.getvalue().splitlines() if line.startswith("admin login:"))
    username, password = login_line.split(":", 1)[1].strip().split(" / ")
    r = client.post("/admin/login/?next=/admin/", {"username": username, "password": password, "next": "/admin/"})

    assert (r.status_code, r["Location"]) == (302, "/admin/")
    assert client.get("/admin/tenants/configentry/").status_code == 200


@pytest.mark.django_db
def test_rotate_fernet_keys__prints_the_count_and_a_removed_key_fails_loudly(tenant, settings):
    from cryptography.fernet import Fernet
    from django.core.management.base import CommandError

    from tenants.models import ConfigEntry

    old = settings.FERNET_KEYS[0]
    make.config(tenant, "a", "secret-a", is_secret=True)
    make.config(None, "b", {"p": "secret-b"}, is_secret=True)
    make.config(tenant, "c", "plain")
    new = Fernet.generate_key().decode()
    settings.FERNET_KEYS = [new, old]
    out = io.StringIO()

    call_command("rotate_fernet_keys", stdout=out)

    assert out.getvalue() == "re-encrypted 2 secret(s) with the first key of FERNET_KEYS\n"
    settings.FERNET_KEYS = [Fernet.generate_key().decode()]  # neither key: nothing can be read
    with pytest.raises(CommandError, match="cannot be decrypted with any key of FERNET_KEYS"):
        call_command("rotate_fernet_keys", stdout=io.StringIO())
    settings.FERNET_KEYS = [new]
    assert sorted(str(e.secret_value) for e in ConfigEntry.objects.filter(is_secret=True)) == ["secret-a", "{'p': 'secret-b'}"]


def test_production__secret_key_but_no_fernet_keys__refuses_to_start():
    result = _manage("check", env={"DJANGO_DEBUG": "false", "SECRET_KEY": "s" * 60})

    assert result.returncode != 0
    assert "DJANGO_DEBUG=false needs FERNET_KEYS" in result.stderr


def test_production__short_secret_key__refuses_to_start():
    from cryptography.fernet import Fernet

    result = _manage("check", env={"DJANGO_DEBUG": "false", "SECRET_KEY": "short", "FERNET_KEYS": Fernet.generate_key().decode()})

    assert result.returncode != 0
    assert "DJANGO_DEBUG=false needs SECRET_KEY" in result.stderr
