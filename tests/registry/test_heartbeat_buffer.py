"""Heartbeats that change nothing but the time are buffered in Redis and written to
the database set-based by ``heartbeat_flush``; every decision (the sweep, the
active checks) flushes first, and every change of status is seen by the next beat."""
from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_redis import get_redis_connection

from tests import factories as make

from .test_active_checks import checks_on, endpoints  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


def _register(tenant, url="http://127.0.0.1:9401", service="pay", on_commit=None):
    if on_commit is None:
        return make.instance(tenant, service, url)
    with on_commit(execute=True):
        return make.instance(tenant, service, url)


_TOKENS: dict[int, str] = {}


def _token(instance_id) -> str:
    """Seed 004's token for the instance, signed with a secret of its tenant (made on first use)."""
    if instance_id not in _TOKENS:
        from registry.models import Instance
        from registry.tokens import service_token_secret_create

        tenant = Instance.objects.select_related("service__tenant").get(pk=instance_id).service.tenant
        _, raw = service_token_secret_create(tenant=tenant, name=f"beat-{instance_id}", actor="t")
        _TOKENS[instance_id] = jwt.encode({"service_id": instance_id}, raw, algorithm="HS256")
    return _TOKENS[instance_id]


def _beat(client, settings, instance_id, **body):
    token = _token(instance_id)
    return client.post("/heartbeat", {"service_id": instance_id, **body}, content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {token}")


def _age(instance_id, seconds):
    from registry.models import Instance

    old = timezone.now() - timedelta(seconds=seconds)
    Instance.objects.filter(pk=instance_id).update(last_heartbeat=old)
    return old


def _flush(on_commit):
    from registry.heartbeats import heartbeat_flush

    with on_commit(execute=True):
        return heartbeat_flush()


def _buffered_ids() -> set[int]:
    return {int(k) for k in get_redis_connection("default").hkeys("registry:beats")}


def _writes(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if not q["sql"].lstrip().upper().startswith("SELECT")]


def test_heartbeat__warm__no_query_then_flush_writes_time_and_response_time(tenant, settings, client,
                                                                            django_capture_on_commit_callbacks):
    from registry.models import Instance

    inst = _register(tenant, on_commit=django_capture_on_commit_callbacks)
    old = _age(inst.pk, 60)
    assert _beat(client, settings, inst.pk).status_code == 200  # warms the token, the tenant, the state

    with CaptureQueriesContext(connection) as queries:
        r = _beat(client, settings, inst.pk, response_time=7.5)

    assert r.status_code == 200
    assert [q["sql"] for q in queries.captured_queries] == []
    assert Instance.objects.get(pk=inst.pk).last_heartbeat == old  # still in the buffer
    assert _flush(django_capture_on_commit_callbacks) == {"flushed": 1, "buffers": 1}
    row = Instance.objects.get(pk=inst.pk)
    assert (timezone.now() - row.last_heartbeat).total_seconds() < 10
    assert (row.status, row.response_time_ms) == ("healthy", 7.5)
    assert _buffered_ids() == set()
    assert _flush(django_capture_on_commit_callbacks) == {"flushed": 0}


def test_heartbeat__flush_never_moves_last_heartbeat_back(tenant, settings, client, django_capture_on_commit_callbacks):
    from registry.heartbeats import BEATS_KEY
    from registry.models import Instance

    inst = _register(tenant)
    get_redis_connection("default").hset(BEATS_KEY, inst.pk, repr((timezone.now() - timedelta(seconds=500)).timestamp()))
    before = Instance.objects.get(pk=inst.pk).last_heartbeat

    _flush(django_capture_on_commit_callbacks)

    assert Instance.objects.get(pk=inst.pk).last_heartbeat == before


def test_sweep__only_recent_beat_still_buffered__not_marked(tenant, settings, client, django_capture_on_commit_callbacks):
    from registry.models import Instance, SweepState
    from registry.sweep import instance_sweep

    settings.REGISTRY_HEARTBEAT_TTL = 90
    settings.REGISTRY_MAX_EVICT_RATIO = 1.0
    inst = _register(tenant)
    silent = _register(tenant, url="http://127.0.0.1:9402")
    old = _age(inst.pk, 200)
    _age(silent.pk, 200)
    assert _beat(client, settings, inst.pk).status_code == 200
    assert Instance.objects.get(pk=inst.pk).last_heartbeat == old
    assert inst.pk in _buffered_ids()
    now = timezone.now()
    SweepState.objects.update_or_create(pk=1, defaults={"last_sweep_at": now - timedelta(seconds=1),
                                                        "resumed_at": now - timedelta(hours=2)})

    with django_capture_on_commit_callbacks(execute=True):
        result = instance_sweep()

    assert result["marked"] == 1
    assert Instance.objects.get(pk=inst.pk).status == "healthy"
    assert Instance.objects.get(pk=silent.pk).status == "unhealthy"
    assert Instance.objects.get(pk=inst.pk).last_heartbeat > old


def test_heartbeat__new_status__slow_path_changes_it_at_once_with_event(tenant, settings, client,
                                                                        django_capture_on_commit_callbacks):
    from events.models import Event
    from registry.models import Instance

    inst = _register(tenant, on_commit=django_capture_on_commit_callbacks)
    assert _beat(client, settings, inst.pk).status_code == 200  # "healthy" is now known in this process

    with django_capture_on_commit_callbacks(execute=True):
        r = _beat(client, settings, inst.pk, status="unhealthy")

    assert r.status_code == 200
    assert Instance.objects.get(pk=inst.pk).status == "unhealthy"
    event = Event.objects.get(resource_type="instance", action="status_changed")
    assert (event.data["id"], event.data["from"], event.data["to"], event.data["reason"]) == (inst.pk, "healthy", "unhealthy", "heartbeat")
    # The next "unhealthy" beat changes nothing: buffered, no write.
    with CaptureQueriesContext(connection) as queries:
        assert _beat(client, settings, inst.pk, status="unhealthy").status_code == 200
    assert _writes(queries) == []
    assert inst.pk in _buffered_ids()


def test_heartbeat__drained__beat_buffered_and_stays_out_of_service(tenant, settings, client,
                                                                    django_capture_on_commit_callbacks):
    from registry.models import Instance
    from registry.selectors import instance_state
    from registry.services import instance_drain

    inst = _register(tenant, on_commit=django_capture_on_commit_callbacks)
    old = _age(inst.pk, 60)
    assert _beat(client, settings, inst.pk).status_code == 200  # "healthy" known in this process
    _flush(django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        instance_drain(instance=inst, actor="user:ops")
    # The very next beat is judged with the new status: out of service, so even
    # an "unhealthy" beat changes nothing and is buffered (a stale "healthy"
    # would have sent it down the slow path).
    assert instance_state(instance_id=inst.pk) == (tenant.pk, "out_of_service")
    with CaptureQueriesContext(connection) as queries:
        assert _beat(client, settings, inst.pk, status="unhealthy").status_code == 200
        assert _beat(client, settings, inst.pk, status="healthy").status_code == 200

    assert _writes(queries) == []
    assert inst.pk in _buffered_ids()
    _flush(django_capture_on_commit_callbacks)
    row = Instance.objects.get(pk=inst.pk)
    assert row.status == "out_of_service"
    assert row.last_heartbeat > old


def test_heartbeat__after_the_sweep_marks_it__next_beat_brings_it_back_at_once(tenant, settings, client,
                                                                             django_capture_on_commit_callbacks):
    from registry.models import Instance, SweepState
    from registry.sweep import instance_sweep

    settings.REGISTRY_MAX_EVICT_RATIO = 1.0
    inst = _register(tenant, on_commit=django_capture_on_commit_callbacks)
    assert _beat(client, settings, inst.pk).status_code == 200  # "healthy" known in this process
    _flush(django_capture_on_commit_callbacks)
    _age(inst.pk, 200)
    now = timezone.now()
    SweepState.objects.update_or_create(pk=1, defaults={"last_sweep_at": now - timedelta(seconds=1),
                                                        "resumed_at": now - timedelta(hours=2)})
    with django_capture_on_commit_callbacks(execute=True):
        assert instance_sweep()["marked"] == 1

    with django_capture_on_commit_callbacks(execute=True):
        assert _beat(client, settings, inst.pk).status_code == 200

    assert Instance.objects.get(pk=inst.pk).status == "healthy"


def test_heartbeat_flush__10_or_5000_beats__same_number_of_queries(tenant, settings, django_capture_on_commit_callbacks):
    from registry.heartbeats import BEAT_RT_KEY, BEATS_KEY, heartbeat_flush
    from registry.models import Instance, Service

    svc = Service.objects.create(tenant=tenant, name="api")
    old = timezone.now() - timedelta(seconds=60)
    redis = get_redis_connection("default")

    def queries_for(n: int) -> int:
        Instance.objects.all().delete()
        Instance.objects.bulk_create(
            [Instance(service=svc, url=f"http://10.0.{i // 250}.{i % 250}:8080", last_heartbeat=old) for i in range(n)]
        )
        ids = list(Instance.objects.values_list("pk", flat=True))
        now = timezone.now().timestamp()
        redis.hset(BEATS_KEY, mapping={i: repr(now) for i in ids})
        redis.hset(BEAT_RT_KEY, mapping={i: "3.0" for i in ids[::2]})
        with CaptureQueriesContext(connection) as ctx, django_capture_on_commit_callbacks(execute=True):
            assert heartbeat_flush()["flushed"] == n
        assert Instance.objects.filter(last_heartbeat__gt=old).count() == n
        assert Instance.objects.filter(response_time_ms=3.0).count() == len(ids[::2])
        return len(ctx.captured_queries)

    assert queries_for(10) == queries_for(5000)


def test_heartbeat_flush__crashed_between_rename_and_commit__next_flush_writes_it(tenant, settings, client, monkeypatch,
                                                                                 django_capture_on_commit_callbacks):
    from registry import heartbeats
    from registry.models import Instance

    a = _register(tenant)
    b = _register(tenant, url="http://127.0.0.1:9402")
    old = _age(a.pk, 60)
    _age(b.pk, 60)
    assert _beat(client, settings, a.pk, response_time=4.0).status_code == 200

    def crash(rows):
        raise RuntimeError("worker died")

    monkeypatch.setattr(heartbeats, "_write_beats", crash)
    with pytest.raises(RuntimeError):
        _flush(django_capture_on_commit_callbacks)
    monkeypatch.undo()
    redis = get_redis_connection("default")
    leftover = [k.decode() for k in redis.keys("registry:beats:flushing:*")]
    assert len(leftover) == 1
    assert Instance.objects.get(pk=a.pk).last_heartbeat == old
    assert _beat(client, settings, b.pk).status_code == 200  # a new buffer meanwhile

    assert _flush(django_capture_on_commit_callbacks) == {"flushed": 2, "buffers": 2}

    rows = {i.pk: i for i in Instance.objects.filter(pk__in=[a.pk, b.pk])}
    assert rows[a.pk].last_heartbeat > old and rows[b.pk].last_heartbeat > old
    assert rows[a.pk].response_time_ms == 4.0
    assert redis.keys("registry:beats:flushing:*") == [] and redis.keys("registry:beat-rt:flushing:*") == []
    assert redis.scard(heartbeats.FLUSHING_KEY) == 0


def test_heartbeat__redis_down__written_to_the_database_at_once(tenant, settings, client, monkeypatch):
    from registry import heartbeats
    from registry.models import Instance

    inst = _register(tenant)
    old = _age(inst.pk, 60)
    monkeypatch.setattr(heartbeats, "_redis_down_until", [0.0])

    def down():
        raise ConnectionError("redis down")

    monkeypatch.setattr(heartbeats, "_redis", down)

    assert _beat(client, settings, inst.pk, response_time=9.0).status_code == 200
    row = Instance.objects.get(pk=inst.pk)
    assert row.last_heartbeat > old and row.response_time_ms == 9.0
    # Redis stays skipped for a while: the next beat goes to the database too.
    _age(inst.pk, 60)
    assert heartbeats.instance_heartbeat(instance_id=inst.pk, actor="t") is not None
    assert Instance.objects.get(pk=inst.pk).last_heartbeat > old
    assert heartbeats.heartbeat_flush() == {"skipped": "redis_down"}


def test_heartbeat__without_redis__database_fast_path(tenant, settings):
    from registry.heartbeats import heartbeat_flush, instance_heartbeat
    from registry.models import Instance

    inst = _register(tenant)
    old = _age(inst.pk, 60)
    settings.REDIS_URL = ""

    with CaptureQueriesContext(connection) as queries:
        assert instance_heartbeat(instance_id=inst.pk, response_time_ms=2.0, actor="t", tenant_id=tenant.pk) is not None

    assert any(q["sql"].lstrip().upper().startswith(("UPDATE", "SET", "EXECUTE")) for q in queries.captured_queries)
    row = Instance.objects.get(pk=inst.pk)
    assert row.last_heartbeat > old and row.response_time_ms == 2.0
    assert heartbeat_flush() == {"skipped": "no_redis"}


def test_beat_schedule__flushes_heartbeats_every_interval(settings):
    from config_hub.celery import _beat_schedule

    settings.REGISTRY_HEARTBEAT_FLUSH_INTERVAL = 2
    entry = _beat_schedule()["registry-heartbeat-flush"]
    assert (entry["task"], entry["schedule"]) == ("registry.heartbeat_flush", 2.0)


def test_active_checks__fresh_heartbeat_still_buffered__counts(tenant, settings, endpoints, checks_on,
                                                             django_capture_on_commit_callbacks):
    from registry.heartbeats import instance_heartbeat
    from registry.models import Instance

    endpoint = endpoints(503)
    inst = _register(tenant)
    Instance.objects.filter(pk=inst.pk).update(health_check_url=endpoint.url)
    for _ in range(3):
        checks_on()
    assert Instance.objects.get(pk=inst.pk).status == "unhealthy"
    old = _age(inst.pk, 200)
    # It agrees it is unhealthy: nothing changes, the beat is buffered.
    assert instance_heartbeat(instance_id=inst.pk, status="unhealthy", actor="t", tenant_id=tenant.pk) is not None
    assert Instance.objects.get(pk=inst.pk).last_heartbeat == old

    endpoint.code = 200
    with django_capture_on_commit_callbacks(execute=True):
        checks_on()
        assert checks_on()["up"] == 1

    assert Instance.objects.get(pk=inst.pk).status == "healthy"


def test_seed_heartbeat_body__plain_shape_and_the_serializer_s_shapes(tenant, settings, client):
    inst = _register(tenant)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {_token(inst.pk)}"}

    def post(body):
        return client.post("/heartbeat", body, content_type="application/json", **auth)

    assert post({"service_id": inst.pk, "status": "healthy", "response_time": 3}).status_code == 200
    assert post({"service_id": str(inst.pk)}).status_code == 200  # the serializer's coercion still applies
    bad = post({"service_id": inst.pk, "status": "dead"})
    assert bad.status_code == 400 and "status" in str(bad.json())
    assert post({"service_id": inst.pk, "response_time": -1}).status_code == 400
    assert post({"service_id": inst.pk, "status": ["healthy"]}).status_code == 400
    assert post([inst.pk]).status_code == 400


# --- a web process's beats in memory (REGISTRY_HEARTBEAT_LOCAL_INTERVAL) ------------------


@pytest.fixture
def local_beats(settings):
    """Beats kept in this process's memory, pushed to Redis by the background thread
    every hour (so only the pushes a test asks for happen): none left over."""
    from registry import heartbeats

    settings.REGISTRY_HEARTBEAT_LOCAL_INTERVAL = 3600
    heartbeats._local.clear()
    yield heartbeats
    heartbeats._local.clear()


def test_local_beats__no_redis_write_no_query__flush_pushes_then_writes(tenant, settings, client, local_beats,
                                                                         django_capture_on_commit_callbacks):
    from registry.models import Instance

    inst = _register(tenant, on_commit=django_capture_on_commit_callbacks)
    old = _age(inst.pk, 60)
    assert _beat(client, settings, inst.pk).status_code == 200  # warms the token, the tenant, the state

    with CaptureQueriesContext(connection) as queries:
        r = _beat(client, settings, inst.pk, response_time=6.5)
    _beat(client, settings, inst.pk)  # no response time: the last one is kept

    assert r.status_code == 200 and [q["sql"] for q in queries.captured_queries] == []
    assert _buffered_ids() == set()  # not in Redis yet: in this process's memory
    assert _flush(django_capture_on_commit_callbacks) == {"flushed": 1, "buffers": 1}
    row = Instance.objects.get(pk=inst.pk)
    assert row.last_heartbeat > old and row.response_time_ms == 6.5


def test_local_beats__pushed_to_redis_by_the_push(tenant, settings, client, local_beats):
    inst = _register(tenant)
    assert _beat(client, settings, inst.pk).status_code == 200

    assert local_beats.push_local_beats() == 1

    assert _buffered_ids() == {inst.pk}
    assert local_beats.push_local_beats() == 0


def test_local_beats__redis_down_at_the_push__written_to_the_database(tenant, settings, client, local_beats,
                                                                     monkeypatch):
    from registry.models import Instance

    inst = _register(tenant)
    old = _age(inst.pk, 60)
    assert _beat(client, settings, inst.pk, response_time=2.0).status_code == 200
    monkeypatch.setattr(local_beats, "_redis_down_until", [0.0])

    def down():
        raise ConnectionError("redis down")

    monkeypatch.setattr(local_beats, "_redis", down)

    assert local_beats.push_local_beats() == 1

    row = Instance.objects.get(pk=inst.pk)
    assert row.last_heartbeat > old and row.response_time_ms == 2.0


def test_local_beats__redis_and_database_down__kept_for_the_next_push(tenant, settings, client, local_beats,
                                                                      monkeypatch):
    inst = _register(tenant)
    assert _beat(client, settings, inst.pk).status_code == 200
    monkeypatch.setattr(local_beats, "_redis_down_until", [0.0])

    def down(*_args, **_kwargs):
        raise ConnectionError("down")

    monkeypatch.setattr(local_beats, "_redis", down)
    monkeypatch.setattr(local_beats, "_write_beats", down)

    assert local_beats.push_local_beats() == 0
    monkeypatch.undo()

    assert local_beats.push_local_beats() == 1
    assert _buffered_ids() == {inst.pk}


@pytest.mark.parametrize("silent_for,marked", [(90 + 1.5, False), (90 + 2.5, True)])
def test_sweep__local_beats__silent_past_ttl_plus_twice_the_push_interval__marked(silent_for, marked, tenant,
                                                                                  settings):
    from registry.models import Instance, SweepState
    from registry.sweep import instance_sweep

    settings.REGISTRY_HEARTBEAT_TTL = 90
    settings.REGISTRY_HEARTBEAT_LOCAL_INTERVAL = 1
    settings.REGISTRY_MAX_EVICT_RATIO = 1.0
    inst = _register(tenant)
    _age(inst.pk, silent_for)
    now = timezone.now()
    SweepState.objects.update_or_create(pk=1, defaults={"last_sweep_at": now - timedelta(seconds=1),
                                                        "resumed_at": now - timedelta(hours=2)})

    instance_sweep()

    assert (Instance.objects.get(pk=inst.pk).status == "unhealthy") is marked
