"""Production mode under gunicorn: WhiteNoise serves /static/, and the admin and the API docs carry a CSP."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO
from tests.faults.conftest import free_port
from tests.waiting import serving

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def production_gunicorn(tmp_path):
    """``collectstatic``, then the Procfile's ``web`` process (gunicorn) of this checkout with
    DJANGO_DEBUG=false, on the test database."""
    from cryptography.fernet import Fernet
    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PROMETHEUS_"))}
    env.update({
        "DJANGO_SETTINGS_MODULE": "config_hub.settings.base",
        "DJANGO_DEBUG": "false",
        "SECRET_KEY": "static-test-" + "s" * 50,
        "SERVICE_JWT_SECRET": "static-test-service-" + "j" * 40,
        "JWT_SIGNING_KEY": "static-test-operators-" + "o" * 40,
        "FERNET_KEYS": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "STATIC_ROOT": str(tmp_path / "static"),
        "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL or "",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        "GUNICORN_THREADS": "4",
    })
    bindir = Path(sys.executable).parent
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=REPO, env=env, check=True,
                   timeout=300)
    # The Procfile's own web command: what a process manager runs in production.
    web = next(line.split(":", 1)[1] for line in (REPO / "Procfile").read_text().splitlines() if line.startswith("web:"))
    program, *args = shlex.split(web)
    base = f"http://127.0.0.1:{port}"
    with serving([str(bindir / program), *args], base=base, cwd=REPO, env=env, log_path=tmp_path / "gunicorn.log"):
        yield base


def test_gunicorn_production__static_files__served_by_whitenoise_with_cache_headers(production_gunicorn):
    base = production_gunicorn

    plain = requests.get(f"{base}/static/admin/css/base.css", timeout=10)
    login = requests.get(f"{base}/admin/login/", timeout=10)
    hashed_path = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', login.text).group(1)
    hashed = requests.get(f"{base}{hashed_path}", timeout=10, headers={"Accept-Encoding": "gzip"})

    assert plain.status_code == 200
    assert plain.headers["Content-Type"].startswith("text/css")
    assert "max-age=" in plain.headers["Cache-Control"]
    assert hashed.status_code == 200
    assert hashed.headers["Cache-Control"] == "max-age=315360000, public, immutable"
    assert hashed.headers.get("Content-Encoding") == "gzip"
    assert "body" in hashed.text


def _script_tags(html: str) -> list[str]:
    return re.findall(r"<script\b[^>]*>", html)


def test_gunicorn_production__admin_and_docs__carry_a_content_security_policy(production_gunicorn, tenant, make_key):
    base = production_gunicorn
    auth = {"Authorization": f"ApiKey {make_key(tenant=tenant, scopes=['configs:read'])}"}

    login = requests.get(f"{base}/admin/login/", timeout=10)
    docs = requests.get(f"{base}/docs", headers=auth, timeout=10)
    docs_script = requests.get(f"{base}/docs?script=", headers=auth, timeout=10)
    redoc = requests.get(f"{base}/redoc", headers=auth, timeout=10)
    api = requests.get(f"{base}/api/v1/configs/", headers=auth, timeout=10)

    # A JSON answer renders nothing: the policy is for pages (HtmlCSPMiddleware).
    assert api.status_code == 200 and api.headers["Content-Type"] == "application/json"
    assert "Content-Security-Policy" not in api.headers
    for page in (login, docs, redoc):
        assert page.status_code == 200, page.url
        policy = page.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
        # Scripts from this origin (or with the request's nonce), never 'unsafe-inline'.
        assert directives["script-src"].split()[0] == "'self'", policy
        assert "'unsafe-inline'" not in directives["script-src"], policy
        assert "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
        # Every script is a file of this origin: nothing inline for the policy to block.
        assert all('src="/' in tag for tag in _script_tags(page.text)), _script_tags(page.text)
    assert docs_script.status_code == 200
    assert docs_script.headers["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in docs_script.text
