"""Discovery answers from a cached snapshot, yet every change of membership or
status is seen by the very next read once it commits, however warm the cache."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests import factories as make

pytestmark = pytest.mark.django_db


@pytest.fixture
def reader(tenant, make_key, client_for):
    return client_for(make_key(tenant=tenant, scopes=["registry:read"]))


def _urls(reader, service: str, n: int = 30) -> set[str]:
    return {reader.get(f"/api/v1/registry/{service}").json()["service_url"] for _ in range(n)}


def test_warm_discovery__drain_then_restore__seen_by_the_next_read(tenant, reader, django_capture_on_commit_callbacks):
    from registry.services import instance_drain, instance_restore

    with django_capture_on_commit_callbacks(execute=True):
        a = make.instance(tenant, "pay", "http://127.0.0.1:9401")
        make.instance(tenant, "pay", "http://127.0.0.1:9402")
    assert _urls(reader, "pay") == {"http://127.0.0.1:9401", "http://127.0.0.1:9402"}

    with django_capture_on_commit_callbacks(execute=True):
        instance_drain(instance=a, actor="user:ops")
    assert _urls(reader, "pay") == {"http://127.0.0.1:9402"}

    with django_capture_on_commit_callbacks(execute=True):
        instance_restore(instance=a, actor="user:ops")
    assert _urls(reader, "pay") == {"http://127.0.0.1:9401", "http://127.0.0.1:9402"}


def test_warm_discovery__cached_read_makes_no_query(tenant, reader, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        make.instance(tenant, "pay", "http://127.0.0.1:9401")
    reader.get("/api/v1/registry/pay")

    with CaptureQueriesContext(connection) as queries:
        r = reader.get("/api/v1/registry/pay")

    assert r.status_code == 200
    assert [q["sql"] for q in queries.captured_queries] == []


def test_warm_discovery__sweep_marks_the_last_instance__503_at_once(tenant, reader, settings, django_capture_on_commit_callbacks):
    from registry.models import Instance, SweepState
    from registry.sweep import instance_sweep

    settings.REGISTRY_MAX_EVICT_RATIO = 1.0
    with django_capture_on_commit_callbacks(execute=True):
        inst = make.instance(tenant, "pay", "http://127.0.0.1:9401")
    assert reader.get("/api/v1/registry/pay").status_code == 200
    now = timezone.now()
    Instance.objects.filter(pk=inst.pk).update(last_heartbeat=now - timedelta(seconds=200))
    SweepState.objects.update_or_create(pk=1, defaults={"last_sweep_at": now - timedelta(seconds=1), "resumed_at": now - timedelta(hours=2)})

    with django_capture_on_commit_callbacks(execute=True):
        assert instance_sweep(now=now)["marked"] == 1

    r = reader.get("/api/v1/registry/pay")
    assert (r.status_code, r.json()["error"]["code"]) == (503, "no_healthy_instance")


def test_warm_discovery__deregistered__gone_at_once(tenant, make_key, client_for, reader, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        a = make.instance(tenant, "pay", "http://127.0.0.1:9401")
        make.instance(tenant, "pay", "http://127.0.0.1:9402")
    assert len(_urls(reader, "pay")) == 2
    writer = client_for(make_key(tenant=tenant, scopes=["registry:write"]))

    with django_capture_on_commit_callbacks(execute=True):
        assert writer.delete(f"/api/v1/registry/instances/{a.pk}").status_code == 204

    assert _urls(reader, "pay") == {"http://127.0.0.1:9402"}


def test_admin_delete_service__instances_announced_and_discovery_404(tenant, reader, admin_user, client, django_capture_on_commit_callbacks):
    from events.models import Event
    from registry.models import Instance, Service

    with django_capture_on_commit_callbacks(execute=True):
        a = make.instance(tenant, "pay", "http://127.0.0.1:9401")
        b = make.instance(tenant, "pay", "http://127.0.0.1:9402")
    assert reader.get("/api/v1/registry/pay").status_code == 200
    service = Service.objects.get(tenant=tenant, name="pay")
    client.force_login(admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(f"/admin/registry/service/{service.pk}/delete/", {"post": "yes"})

    assert r.status_code == 302
    assert not Instance.objects.filter(pk__in=[a.pk, b.pk]).exists()
    gone = Event.objects.filter(resource_type="instance", action="deregistered", key="pay")
    assert sorted(e.data["id"] for e in gone) == sorted([a.pk, b.pk])
    assert reader.get("/api/v1/registry/pay").status_code == 404


@pytest.mark.parametrize("buffered", [True, False], ids=["redis-buffer", "database"])
def test_heartbeat_fast_path__time_and_response_time_written_status_kept(tenant, settings, buffered, django_capture_on_commit_callbacks):
    from registry.heartbeats import heartbeat_flush, instance_heartbeat
    from registry.models import Instance
    from registry.services import instance_drain

    settings.REGISTRY_HEARTBEAT_BUFFER = buffered
    inst = make.instance(tenant, "pay", "http://127.0.0.1:9401")
    Instance.objects.filter(pk=inst.pk).update(last_heartbeat=timezone.now() - timedelta(seconds=60))
    before = timezone.now()

    assert instance_heartbeat(instance_id=inst.pk, response_time_ms=12.5, actor="t", tenant_id=tenant.pk) is not None
    with django_capture_on_commit_callbacks(execute=True):
        heartbeat_flush()

    row = Instance.objects.get(pk=inst.pk)
    assert (row.status, row.response_time_ms) == ("healthy", 12.5)
    assert row.last_heartbeat >= before
    instance_drain(instance=inst, actor="user:ops")
    instance_heartbeat(instance_id=inst.pk, actor="t", tenant_id=tenant.pk)
    assert Instance.objects.get(pk=inst.pk).status == "out_of_service"


def test_heartbeat__instance_of_another_tenant__not_touched(tenant, other_tenant):
    from registry.heartbeats import instance_heartbeat
    from registry.models import Instance

    inst = make.instance(other_tenant, "pay", "http://127.0.0.1:9401")
    old = timezone.now() - timedelta(seconds=60)
    Instance.objects.filter(pk=inst.pk).update(last_heartbeat=old)

    assert instance_heartbeat(instance_id=inst.pk, actor="t", tenant_id=tenant.pk) is None
    assert Instance.objects.get(pk=inst.pk).last_heartbeat == old


def test_service_token__instance_deregistered__refused_on_the_next_request(tenant, service_token, client,
                                                                        django_capture_on_commit_callbacks):
    from registry.services import instance_deregister

    with django_capture_on_commit_callbacks(execute=True):
        inst = make.instance(tenant, "pay", "http://127.0.0.1:9401")
    token = service_token(inst)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert client.get("/services/pay", **auth).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        instance_deregister(instance_id=inst.pk, tenant_id=None, actor="user:ops")

    r = client.post("/heartbeat", {"service_id": inst.pk}, content_type="application/json", **auth)
    assert r.status_code == 401
    assert client.get("/services/pay", **auth).status_code == 401


def test_service_token__verified_once_then_expires__refused_after_exp(tenant, service_token, client, clock):
    inst = make.instance(tenant, "pay", "http://127.0.0.1:9401")
    token = service_token(inst, exp=int(clock.now()) + 2)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert client.post("/heartbeat", {"service_id": inst.pk}, content_type="application/json", **auth).status_code == 200

    clock.advance(2)  # exp is reached: the token is no longer valid

    r = client.post("/heartbeat", {"service_id": inst.pk}, content_type="application/json", **auth)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize("service_id", ["³", "٣", "1.5", "-1", True])
def test_service_token__service_id_not_an_ascii_integer__401_never_500(settings, client, service_id):
    import jwt

    token = jwt.encode({"service_id": service_id}, settings.SERVICE_JWT_SECRET, algorithm="HS256")

    r = client.get("/services/pay", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert r.status_code == 401
    assert r.json()["error"]["code"] == "not_authenticated"


def test_discovery__metadata_filter_matches_none__503_says_the_filter(tenant, reader, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        make.instance(tenant, "pay", "http://pay-1:8080", metadata={"zone": "eu"})

    found = reader.get("/api/v1/registry/pay?zone=eu")
    none = reader.get("/api/v1/registry/pay?zone=us")

    assert found.status_code == 200 and found.json()["service_url"] == "http://pay-1:8080"
    assert none.status_code == 503
    assert none.json()["error"]["message"] == (
        "no healthy instance of 'pay' has metadata zone=us (query parameters of discovery filter on metadata)")
