"""/health, /metrics and the offline API docs."""
from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import factories as make

pytestmark = pytest.mark.django_db


def _metrics(client) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(client.get("/metrics").content.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_health__seed002_format__every_field(client):
    body = client.get("/health").json()

    assert set(body) == {"service", "status", "version", "port", "dependencies", "metrics"}
    assert body["status"] == "healthy"
    assert body["dependencies"] == {"database": "healthy", "redis": "healthy", "broker": "healthy", "beat": "unknown"}
    assert body["metrics"]["uptime_seconds"] >= 0


def test_health__beat_ran_long_ago__degraded(client, settings):
    import time

    from django.core.cache import cache

    from config_hub.tasks import BEAT_KEY, beat_heartbeat_task

    beat_heartbeat_task()
    assert client.get("/health").json()["dependencies"]["beat"] == "healthy"
    cache.set(BEAT_KEY, time.time() - settings.BEAT_STALE_AFTER - 5, None)

    body = client.get("/health").json()

    assert body["dependencies"]["beat"] == "stale"
    assert body["status"] == "degraded"


def test_metrics__parse__counters_move_with_the_actions(client, tenant, environments, make_key, client_for):
    from registry.heartbeats import instance_heartbeat

    make.config(tenant, "k", 1)
    make.flag(tenant, "f", environment=environments["production"], is_enabled=True)
    inst = make.instance(tenant, "svc", "http://127.0.0.1:9701")
    api = client_for(make_key(tenant=tenant, scopes=["configs:read", "flags:read"]))
    before = _metrics(client)

    api.get("/api/v1/config/k")
    api.get("/api/v1/config/k")
    api.post("/api/v1/feature-flags/evaluate", {"flag_name": "f", "environment": "production"}, format="json")
    instance_heartbeat(instance_id=inst.pk, actor="t")
    after = _metrics(client)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("confighub_config_fetch_seconds_count", route="config") == 2
    assert delta("confighub_config_cache_total", outcome="miss") == 1
    assert delta("confighub_config_cache_total", outcome="hit") == 1
    assert delta("confighub_flag_evaluations_total") == 1
    assert delta("confighub_registry_heartbeats_total") == 1
    assert after[("confighub_registry_instances", (("status", "healthy"),))] == 1


def test_metrics__closed_by_setting__needs_credentials(client, settings, tenant, make_key):
    settings.METRICS_PUBLIC = False

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"ApiKey {make_key(tenant=tenant, scopes=['configs:read'])}").status_code == 200


def test_docs__operator_session__served_from_our_own_static_files(client, admin_user):
    client.force_login(admin_user)

    page = client.get("/docs")
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")

    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn." not in html and "unpkg" not in html
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/config/{key}" in paths and "/ofrep/v1/evaluate/flags/{key}" in paths and "/heartbeat" in paths


def test_health__embedded_setup__beat_run_by_another_process_is_seen(client, settings, tmp_path):
    """Without Redis each process has its own cache: the worker's record of the
    beat reaches the web process through var/ instead."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "CELERY_"))}
    env.update({"DJANGO_SETTINGS_MODULE": "config_hub.settings.base", "CONFIG_HUB_VAR_DIR": str(tmp_path)})
    subprocess.run([sys.executable, "-c", "import django; django.setup(); "
                    "from config_hub.tasks import beat_heartbeat_task; beat_heartbeat_task()"],
                   env=env, check=True, cwd=settings.BASE_DIR)
    settings.REDIS_URL = ""
    settings.VAR_DIR = tmp_path

    body = client.get("/health").json()

    assert body["dependencies"]["beat"] == "healthy"
    assert body["metrics"]["beat_last_run_seconds_ago"] < 60


def test_docs__trailing_slash__redirects_to_the_docs(client):
    r = client.get("/docs/")

    assert (r.status_code, r["Location"]) == (301, "/docs")
