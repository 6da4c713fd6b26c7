"""The beat sweep: TTL, removal, self-preservation, mass-loss guard, constant queries,
and the same behaviour through a real Celery worker."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests import factories as make
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db


def _fleet(tenant, n: int, *, service: str = "api", age_seconds: float = 0):
    from registry.models import Instance, Service

    svc, _ = Service.objects.get_or_create(tenant=tenant, name=service)
    beat = timezone.now() - timedelta(seconds=age_seconds)
    Instance.objects.bulk_create(
        [Instance(service=svc, url=f"http://10.0.{i // 250}.{i % 250}:8080", last_heartbeat=beat) for i in range(n)]
    )
    return svc


def _steady_state(now=None, gap: float = 1.0):
    """A hub that has been sweeping for a long time (no grace period)."""
    from registry.models import SweepState

    now = now or timezone.now()
    SweepState.objects.update_or_create(pk=1, defaults={"last_sweep_at": now - timedelta(seconds=gap), "resumed_at": now - timedelta(hours=2)})


def test_sweep__silent_past_ttl__marked_unhealthy_with_event(tenant, settings):
    from events.models import Event
    from registry.models import Instance
    from registry.sweep import instance_sweep

    settings.REGISTRY_MAX_EVICT_RATIO = 1.0
    _fleet(tenant, 3, age_seconds=10)
    _fleet(tenant, 2, service="fresh", age_seconds=0)
    settings.REGISTRY_HEARTBEAT_TTL = 5
    _steady_state()

    result = instance_sweep()

    assert result["marked"] == 3
    assert Instance.objects.filter(status="unhealthy").count() == 3
    assert Instance.objects.filter(service__name="fresh", status="healthy").count() == 2
    event = Event.objects.get(resource_type="instance", action="status_changed", actor="system:beat")
    assert (event.key, event.data["count"], event.data["to"]) == ("api", 3, "unhealthy")
    assert sorted(event.data["ids"]) == sorted(Instance.objects.filter(status="unhealthy").values_list("pk", flat=True))


def test_sweep__hub_down_longer_than_ttl__marks_nobody_until_a_full_ttl(tenant, settings):
    from registry.models import Instance, SweepState
    from registry.sweep import instance_sweep

    settings.REGISTRY_HEARTBEAT_TTL = 90
    _fleet(tenant, 4, age_seconds=600)
    now = timezone.now()
    SweepState.objects.create(pk=1, last_sweep_at=now - timedelta(minutes=10), resumed_at=now - timedelta(hours=1))

    first = instance_sweep(now=now)
    second = instance_sweep(now=now + timedelta(seconds=15))
    after_ttl = instance_sweep(now=now + timedelta(seconds=91))

    assert first["grace"] is True and second["grace"] is True
    assert after_ttl["marked"] == 4
    assert Instance.objects.filter(status="unhealthy").count() == 4


def test_sweep__more_than_ratio_silent__marks_but_removes_none(tenant, settings, caplog):
    from registry.models import Instance
    from registry.sweep import instance_sweep

    settings.REGISTRY_HEARTBEAT_TTL = 5
    settings.REGISTRY_DEREGISTER_AFTER = 60
    settings.REGISTRY_MAX_EVICT_RATIO = 0.5
    svc = _fleet(tenant, 6, age_seconds=10)
    _fleet(tenant, 2, service="old", age_seconds=3600)
    Instance.objects.filter(service__name="old").update(status="unhealthy")
    _steady_state()

    result = instance_sweep()

    assert result == {"marked": 6, "removed": 0, "grace": False, "mass_services": 1}
    assert Instance.objects.filter(service=svc, status="unhealthy").count() == 6
    assert Instance.objects.filter(service__name="old").count() == 2  # kept this round
    assert "nothing removed this round" in caplog.text


def test_sweep__unhealthy_past_deregister_after__removed(tenant, settings):
    from registry.models import Instance
    from registry.sweep import instance_sweep

    settings.REGISTRY_HEARTBEAT_TTL = 5
    settings.REGISTRY_DEREGISTER_AFTER = 60
    _fleet(tenant, 3, service="old", age_seconds=3600)
    Instance.objects.filter(service__name="old").update(status="unhealthy")
    _fleet(tenant, 3, service="live", age_seconds=0)
    _steady_state()

    result = instance_sweep()

    assert result["removed"] == 3
    assert Instance.objects.filter(service__name="old").count() == 0


def test_sweep__10_or_10000_instances__same_number_of_queries(tenant, settings):
    from registry.models import Instance
    from registry.sweep import instance_sweep

    settings.REGISTRY_HEARTBEAT_TTL = 5
    settings.REGISTRY_MAX_EVICT_RATIO = 1.0

    def queries_for(n: int) -> int:
        Instance.objects.all().delete()
        _fleet(tenant, n, age_seconds=10)
        _steady_state()
        with CaptureQueriesContext(connection) as ctx:
            result = instance_sweep()
        assert result["marked"] == n
        return len(ctx.captured_queries)

    assert queries_for(10) == queries_for(10_000)


def test_sweep__lock_held_by_another_beat__skips(tenant, settings):
    import threading

    from django.db import connections, transaction

    from registry.sweep import _LOCK_ID, instance_sweep

    _steady_state()
    held, release = threading.Event(), threading.Event()

    def hold_lock():
        with transaction.atomic(using="default"), connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_ID])
            held.set()
            release.wait(10)
        connections["default"].close()

    t = threading.Thread(target=hold_lock)
    t.start()
    held.wait(10)
    try:
        assert instance_sweep() == {"skipped": "locked"}
    finally:
        release.set()
        t.join()


def test_drained__never_discovered_and_heartbeat_keeps_it_drained(tenant, make_key, client_for):
    from registry.heartbeats import instance_heartbeat
    from registry.models import Instance
    from registry.services import instance_drain

    inst = make.instance(tenant, "pay", "http://127.0.0.1:9401")
    instance_drain(instance=inst, actor="user:ops")
    instance_heartbeat(instance_id=inst.pk, status="healthy", actor="t")
    client = client_for(make_key(tenant=tenant, scopes=["registry:read"]))

    r = client.get("/api/v1/registry/pay")

    assert r.status_code == 503
    assert r.json()["error"]["code"] == "no_healthy_instance"
    assert Instance.objects.get(pk=inst.pk).status == "out_of_service"
    assert client.get("/api/v1/registry/healthy").json() == {"services": []}


def test_discover__metadata_filter_and_other_tenant(tenant, other_tenant, make_key, client_for):
    make.instance(tenant, "search", "http://127.0.0.1:9501", metadata={"version": "1", "region": "eu"})
    make.instance(tenant, "search", "http://127.0.0.1:9502", metadata={"version": "2", "region": "us"})
    mine = client_for(make_key(tenant=tenant, scopes=["registry:read"]))
    theirs = client_for(make_key(tenant=other_tenant, scopes=["registry:read"]))

    assert {mine.get("/api/v1/registry/search?region=us").json()["service_url"] for _ in range(5)} == {"http://127.0.0.1:9502"}
    assert len({mine.get("/api/v1/registry/search").json()["service_url"] for _ in range(40)}) == 2
    assert theirs.get("/api/v1/registry/search").status_code == 404
    assert theirs.get("/api/v1/registry/healthy").json() == {"services": []}


@pytest.mark.worker
def test_worker__sweep_through_broker__ttl_then_beat_then_removal(celery_worker_process, tenant, settings):
    """A real worker runs the beat's task: silent → unhealthy → one beat → healthy → silent → removed."""
    from registry.heartbeats import instance_heartbeat
    from registry.models import Instance
    from registry.tasks import registry_sweep_task

    # The worker process reads these from its environment at start.
    assert celery_worker_process.env.get("REGISTRY_HEARTBEAT_TTL") == "2"
    inst = make.instance(tenant, "edge", "http://127.0.0.1:9601")

    def sweep_until(predicate, timeout=15.0):
        """Send the beat's task to the worker every half second until ``predicate()`` holds
        (the TTLs run on the worker's own clock: they pass in real time)."""
        def swept():
            _steady_state(gap=0)
            registry_sweep_task.delay()
            return predicate()

        return wait_until(swept, timeout=timeout, step=0.5)

    assert sweep_until(lambda: Instance.objects.get(pk=inst.pk).status == "unhealthy"), celery_worker_process.log_path.read_text()[-3000:]
    instance_heartbeat(instance_id=inst.pk, status="healthy", actor="t")
    assert Instance.objects.get(pk=inst.pk).status == "healthy"
    assert sweep_until(lambda: not Instance.objects.filter(pk=inst.pk).exists()), celery_worker_process.log_path.read_text()[-3000:]
