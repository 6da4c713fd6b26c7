"""Active checks: real HTTP health endpoints on 127.0.0.1 probed by the hub.

N consecutive failures mark an instance unhealthy, M consecutive passes bring it
back (only while it beats), a flapping endpoint changes nothing, and discovery
follows at once.
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests import factories as make

pytestmark = pytest.mark.django_db


class HealthEndpoint:
    """GET answers ``code`` (settable); counts the probes."""

    def __init__(self, code: int = 200):
        self.code = code
        self.probes = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                endpoint.probes += 1
                self.send_response(endpoint.code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoints():
    made: list[HealthEndpoint] = []

    def make(code: int = 200) -> HealthEndpoint:
        made.append(HealthEndpoint(code))
        return made[-1]

    yield make
    for e in made:
        e.close()


@pytest.fixture
def checks_on(settings):
    from django.core.cache import cache

    settings.REGISTRY_ACTIVE_CHECKS = True
    settings.REGISTRY_CHECK_FAILURES = 3
    settings.REGISTRY_CHECK_SUCCESSES = 2
    settings.REGISTRY_CHECK_TIMEOUT = 1.0

    def run():
        from registry.checks import instance_active_checks

        cache.delete("registry:checks-lock")  # one run per beat interval; tests run them back to back
        return instance_active_checks()

    return run


def _status(instance) -> str:
    from registry.models import Instance

    return Instance.objects.get(pk=instance.pk).status


def test_failing_endpoint__unhealthy_after_n_failures_then_back_after_m_passes(
    tenant, endpoints, checks_on, make_key, client_for, django_capture_on_commit_callbacks,
):
    from events.models import Event

    good, bad = endpoints(200), endpoints(500)
    with django_capture_on_commit_callbacks(execute=True):
        a = make.instance(tenant, "pay", "http://127.0.0.1:9401", health_check_url=good.url)
        b = make.instance(tenant, "pay", "http://127.0.0.1:9402", health_check_url=bad.url)
    reader = client_for(make_key(tenant=tenant, scopes=["registry:read"]))

    with django_capture_on_commit_callbacks(execute=True):
        checks_on(), checks_on()
    assert (_status(a), _status(b)) == ("healthy", "healthy")  # two failures: not yet

    with django_capture_on_commit_callbacks(execute=True):
        assert checks_on() == {"probed": 2, "down": 1, "up": 0, "blocked": 0}
    assert (_status(a), _status(b)) == ("healthy", "unhealthy")
    assert {reader.get("/api/v1/registry/pay").json()["service_url"] for _ in range(20)} == {"http://127.0.0.1:9401"}
    down = Event.objects.get(resource_type="instance", action="status_changed", data__reason="active_check")
    assert (down.data["ids"], down.data["to"], down.actor) == ([b.pk], "unhealthy", "system:beat")

    bad.code = 200
    with django_capture_on_commit_callbacks(execute=True):
        checks_on()
    assert _status(b) == "unhealthy"  # one pass: not yet
    with django_capture_on_commit_callbacks(execute=True):
        assert checks_on()["up"] == 1
    assert _status(b) == "healthy"
    assert len({reader.get("/api/v1/registry/pay").json()["service_url"] for _ in range(40)}) == 2
    assert good.probes == 5 and bad.probes == 5


def test_flapping_endpoint__status_never_changes(tenant, endpoints, checks_on):
    from events.models import Event

    flappy = endpoints(200)
    inst = make.instance(tenant, "pay", "http://127.0.0.1:9401", health_check_url=flappy.url)

    for i in range(8):
        flappy.code = 500 if i % 2 == 0 else 200
        checks_on()

    assert _status(inst) == "healthy"
    assert flappy.probes == 8
    assert not Event.objects.filter(data__reason="active_check").exists()


def test_marked_down_by_checks__own_heartbeat_does_not_overrule(tenant, endpoints, checks_on):
    from registry.heartbeats import instance_heartbeat

    bad = endpoints(503)
    inst = make.instance(tenant, "pay", "http://127.0.0.1:9401", health_check_url=bad.url)
    for _ in range(3):
        checks_on()
    assert _status(inst) == "unhealthy"

    instance_heartbeat(instance_id=inst.pk, status="healthy", actor="t")

    assert _status(inst) == "unhealthy"


def test_unreachable_or_drained__unreachable_counts_as_failure_drained_not_probed(tenant, endpoints, checks_on):
    from registry.services import instance_drain

    drained_endpoint = endpoints(500)
    gone = make.instance(tenant, "pay", "http://127.0.0.1:9401",
                         health_check_url="http://127.0.0.1:9/nothing-listens-here")
    drained = make.instance(tenant, "pay", "http://127.0.0.1:9402", health_check_url=drained_endpoint.url)
    instance_drain(instance=drained, actor="user:ops")

    for _ in range(3):
        checks_on()

    assert _status(gone) == "unhealthy"
    assert _status(drained) == "out_of_service"
    assert drained_endpoint.probes == 0


def test_checks_off__nothing_probed(tenant, endpoints, settings):
    from registry.checks import instance_active_checks

    settings.REGISTRY_ACTIVE_CHECKS = False
    e = endpoints(500)
    make.instance(tenant, "pay", "http://127.0.0.1:9401", health_check_url=e.url)

    assert instance_active_checks() == {"skipped": "disabled"}
    assert e.probes == 0


def test_quick_trial_ttl_shorter_than_sweep_interval__silent_instance_marked(tenant, settings):
    """REGISTRY_HEARTBEAT_TTL=4 with the default 15 s sweep interval: ordinary
    gaps between sweeps are not outages, so the second sweep marks."""
    from datetime import timedelta

    from django.utils import timezone

    from registry.models import Instance
    from registry.sweep import instance_sweep

    settings.REGISTRY_HEARTBEAT_TTL = 4
    settings.REGISTRY_SWEEP_INTERVAL = 15
    settings.REGISTRY_MAX_EVICT_RATIO = 1.0
    inst = make.instance(tenant, "pay", "http://127.0.0.1:9401")
    start = timezone.now()
    Instance.objects.filter(pk=inst.pk).update(last_heartbeat=start)

    first = instance_sweep(now=start)               # the hub just started: grace
    later = instance_sweep(now=start + timedelta(seconds=15))

    assert first["grace"] is True
    assert (later["grace"], later["marked"]) == (False, 1)
    assert _status(inst) == "unhealthy"
