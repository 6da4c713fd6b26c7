"""Faults: the tests' own PostgreSQL and Redis (tests/faults/conftest.py) are stopped and restarted."""
from __future__ import annotations

import json
import threading

import pytest
import requests
from django.db import connection

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


def _seed(tenant):
    from tenants.services.configs import config_create

    config_create(tenant=tenant, key="db.pool", value={"size": 5}, actor="test")


def test_redis_down__config_reads__answered_from_the_database(live_server, tenant, make_key, redis_outage):
    _seed(tenant)
    key = make_key(tenant=tenant, scopes=["configs:read", "configs:write"])
    headers = {"Authorization": f"ApiKey {key}"}
    url = f"{live_server.url}/api/v1/config/db.pool"
    assert requests.get(url, headers=headers, timeout=5).json()["value"] == {"size": 5}

    with redis_outage():
        read = requests.get(url, headers=headers, timeout=5)
        health = requests.get(f"{live_server.url}/health", timeout=5).json()
        write = requests.put(
            f"{live_server.url}/config/tenants/acme/configs/db.pool", json={"config_value": {"size": 9}},
            headers=headers, timeout=5,
        )
        reread = requests.get(url, headers=headers, timeout=5)

    assert read.status_code == 200 and read.json()["value"] == {"size": 5}
    assert health["status"] == "degraded"
    assert health["dependencies"]["redis"] == "unhealthy"
    assert health["dependencies"]["database"] == "healthy"
    assert write.status_code == 200 and write.json()["version"] == 2
    assert reread.json()["value"] == {"size": 9}
    # Back up: the write is visible, not a value cached before the outage.
    assert requests.get(url, headers=headers, timeout=5).json()["value"] == {"size": 9}
    assert requests.get(f"{live_server.url}/health", timeout=5).json()["status"] == "healthy"


def test_redis_down__flags_and_registry__answered_from_the_database(live_server, tenant, environments, make_key, settings,
                                                                  redis_outage):
    import jwt

    from flags.services.flags import flag_create
    from registry.services import instance_register
    from registry.tokens import service_token_secret_create

    flag_create(tenant=tenant, name="beta", environment=environments["production"], is_enabled=True, actor="test")
    inst, _ = instance_register(tenant=tenant, service_name="pay", url="http://127.0.0.1:9401", actor="test")
    key = make_key(tenant=tenant, scopes=["flags:read", "flags:write", "registry:read", "registry:write"])
    headers = {"Authorization": f"ApiKey {key}"}
    token = jwt.encode({"service_id": inst.pk}, service_token_secret_create(tenant=tenant, actor="test")[1], algorithm="HS256")
    evaluate = {"flag_name": "beta", "environment": "production", "user_id": "u1"}
    base = live_server.url
    assert requests.post(f"{base}/api/v1/feature-flags/evaluate", json=evaluate, headers=headers, timeout=5).json()["enabled"] is True

    with redis_outage():
        one = requests.post(f"{base}/api/v1/feature-flags/evaluate", json=evaluate, headers=headers, timeout=5)
        every = requests.post(f"{base}/api/v1/feature-flags/evaluate-all", json={"environment": "production", "context": {"userId": "u1"}},
                              headers=headers, timeout=5)
        ofrep = requests.post(f"{base}/ofrep/v1/evaluate/flags/beta", json={"context": {"targetingKey": "u1"}},
                              headers={**headers, "X-Environment": "production"}, timeout=5)
        created = requests.post(f"{base}/api/v1/feature-flags/", json={"name": "gamma", "environment": "production", "is_enabled": True},
                                headers=headers, timeout=5)
        gamma = requests.post(f"{base}/api/v1/feature-flags/evaluate", json={**evaluate, "flag_name": "gamma"}, headers=headers, timeout=5)
        beat = requests.post(f"{base}/heartbeat", json={"service_id": inst.pk}, headers={"Authorization": f"Bearer {token}"}, timeout=5)
        found = requests.get(f"{base}/api/v1/registry/pay", headers=headers, timeout=5)

    assert (one.status_code, one.json()["enabled"]) == (200, True)
    assert every.status_code == 200 and "beta" in json.dumps(every.json())
    assert (ofrep.status_code, ofrep.json()["value"]) == (200, True)
    assert created.status_code == 201
    assert (gamma.status_code, gamma.json()["enabled"]) == (200, True)  # a write during the outage is read at once
    assert beat.status_code == 200
    assert (found.status_code, found.json()["service_url"]) == (200, "http://127.0.0.1:9401")


def test_postgres_down__api__answers_503_json_and_recovers(live_server, tenant, make_key, postgres_outage):
    _seed(tenant)
    key = make_key(tenant=tenant, scopes=["configs:read"])
    headers = {"Authorization": f"ApiKey {key}"}
    url = f"{live_server.url}/api/v1/configs/"
    assert requests.get(url, headers=headers, timeout=5).status_code == 200

    with postgres_outage():
        down = requests.get(url, headers=headers, timeout=10)
        health = requests.get(f"{live_server.url}/health", timeout=10)

    assert down.status_code == 503
    assert down.json()["error"]["code"] == "dependency_unavailable"
    assert down.headers["Retry-After"] == "5"
    assert health.json()["dependencies"]["database"] == "unhealthy"
    assert health.json()["status"] == "degraded"
    connection.close()  # the test thread's own connection died with the server
    recovered = requests.get(url, headers=headers, timeout=10)
    assert recovered.status_code == 200
    assert recovered.json()["count"] == 1


def test_concurrent_writers__same_version__exactly_one_wins_each_version(live_server, tenant, make_key):
    from tenants.models import ConfigEntry

    _seed(tenant)
    entry = ConfigEntry.objects.get(key="db.pool")
    key = make_key(tenant=tenant, scopes=["configs:read", "configs:write"])
    headers = {"Authorization": f"ApiKey {key}", "If-Match": f'"{entry.pk}-1"'}
    results: list[int] = []
    lock = threading.Lock()

    def write(i: int) -> None:
        r = requests.put(f"{live_server.url}/api/v1/config/{entry.pk}", json={"value": {"size": i}}, headers=headers, timeout=30)
        with lock:
            results.append(r.status_code)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(results) == [200] + [412] * 19
    entry.refresh_from_db()
    assert entry.version == 2


@pytest.mark.worker
def test_broker_down__change_commits__delivered_once_after_it_returns(celery_worker_process, tenant, redis_outage):
    """Redis is this hub's broker too: stop it, change a config, start it, the sweep sends it."""
    import time as _time

    from events.models import Event
    from events.services import webhook_create
    from events.tasks import outbox_sweep
    from tenants.services.configs import config_create
    from tests.receiver import Receiver

    with Receiver() as receiver:
        webhook_create(tenant=tenant, url=receiver.url, resource_types=["config"], actor="t")
        with redis_outage():
            started = _time.monotonic()
            config_create(tenant=tenant, key="during.outage", value=1, actor="t")
            write_seconds = _time.monotonic() - started
            event = Event.objects.get(key="during.outage")
            assert event.dispatched_at is None
        # Broker back: the beat's outbox sweep (run here) queues what was left.
        deadline = _time.monotonic() + 30
        while _time.monotonic() < deadline and not receiver.requests:
            try:
                outbox_sweep(older_than=0)
            except Exception as exc:  # noqa: BLE001 - the worker may still be reconnecting
                print("sweep failed:", repr(exc)[:300])
            _time.sleep(1.0)
        _time.sleep(2.0)
        outbox_sweep(older_than=0)
        _time.sleep(1.0)

    assert write_seconds < 5
    assert len(receiver.requests) == 1, celery_worker_process.log_path.read_text()[-3000:]
    assert celery_worker_process.proc.poll() is None  # the worker survived the broker's restart
    assert json.loads(receiver.requests[0]["body"])["data"]["key"] == "during.outage"
    event.refresh_from_db()
    assert event.dispatched_at is not None


def test_fault_servers__are_the_tests_own__the_machines_servers_keep_running(throwaway_postgres, throwaway_redis,
                                                                             redis_outage, postgres_outage):
    """The outages stop the package's throwaway servers, never the PostgreSQL and Redis of the machine."""
    import subprocess
    from urllib.parse import urlsplit

    from django.conf import settings

    assert int(connection.settings_dict["PORT"]) == throwaway_postgres.port
    assert urlsplit(settings.REDIS_URL).port == throwaway_redis.port
    assert urlsplit(settings.CELERY_BROKER_URL).port == throwaway_redis.port
    from config_hub.celery import app

    assert app.connection_for_write().port == throwaway_redis.port  # where this process publishes tasks
    assert throwaway_postgres.port != 5432 and throwaway_redis.port != 6379

    def machine_up() -> tuple[bool, bool]:
        pg = subprocess.run([str(throwaway_postgres.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", "5432"],
                            timeout=10).returncode == 0
        redis = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "ping"], capture_output=True,
                               timeout=5).stdout.strip() == b"PONG"
        return pg, redis

    before = machine_up()
    with redis_outage(), postgres_outage():
        assert (throwaway_postgres.up(), throwaway_redis.up()) == (False, False)
        assert machine_up() == before
    assert (throwaway_postgres.up(), throwaway_redis.up()) == (True, True)
    assert machine_up() == before
