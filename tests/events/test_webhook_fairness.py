"""Webhook delivery is fair across tenants: one tenant's slow receivers hold at most
WEBHOOK_TENANT_CONCURRENCY worker slots (before: ten tarpits of tenant A delayed
tenant B's delivery by the whole timeout), and a tenant has at most
WEBHOOK_MAX_PER_TENANT subscriptions."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests import factories as make
from tests.receiver import Receiver
from tests.waiting import wait_until


class Tarpit:
    """Holds every POST until ``release`` is set (at most a minute), then answers 200;
    counts requests in flight and the most at once."""

    def __init__(self):
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.in_flight = self.most = self.answered = 0
        tarpit = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with tarpit.lock:
                    tarpit.in_flight += 1
                    tarpit.most = max(tarpit.most, tarpit.in_flight)
                tarpit.release.wait(60)
                with tarpit.lock:
                    tarpit.in_flight -= 1
                try:
                    self.send_response(200)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    with tarpit.lock:
                        tarpit.answered += 1
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def celery_worker_env():
    # The worker runs 8 threads; a delivery may take 30 s (the tarpit outlasts the test).
    return {"WEBHOOK_TENANT_CONCURRENCY": "2", "WEBHOOK_TENANT_BUSY_DELAY": "0.5", "WEBHOOK_TIMEOUT": "30"}


@pytest.mark.worker
def test_delivery__tenant_a_has_ten_tarpits__tenant_b_delivered_while_a_is_held(celery_worker_process, tenant, other_tenant):
    tarpit = Tarpit()
    try:
        with Receiver() as quick:
            for n in range(10):
                make.webhook(tenant, f"{tarpit.base}/hook/{n}", resource_types=["config"])
            make.webhook(other_tenant, quick.url, resource_types=["config"])

            make.config(tenant, "feature.banner", "on")
            assert wait_until(lambda: tarpit.in_flight >= 2, timeout=20), celery_worker_process.log_path.read_text()[-3000:]
            make.config(other_tenant, "feature.banner", "on")

            arrived = quick.arrived.wait(10)
            held = (tarpit.in_flight, tarpit.answered, tarpit.release.is_set())
            tarpit.release.set()
            assert arrived, celery_worker_process.log_path.read_text()[-3000:]
            # Tenant B's delivery came while tenant A's receivers still held theirs,
            # and A never had more than its cap in flight.
            assert held == (2, 0, False)
            assert tarpit.most == 2
            # A's other deliveries waited in the queue, not lost.
            assert wait_until(lambda: tarpit.answered == 10, timeout=30), (tarpit.answered, tarpit.most, tarpit.in_flight)
    finally:
        tarpit.close()


@pytest.mark.django_db
def test_webhook_create__tenant_at_its_cap__400_and_nothing_created(tenant, other_tenant, make_key, client_for, settings):
    from events.models import WebhookSubscription

    settings.WEBHOOK_MAX_PER_TENANT = 3
    api = client_for(make_key(tenant=tenant, scopes=["admin"]))
    created = [api.post("/api/v1/webhooks/", {"url": f"http://hooks:8080/{n}"}, format="json").status_code for n in range(3)]

    r = api.post("/api/v1/webhooks/", {"url": "http://hooks:8080/4"}, format="json")
    other = client_for(make_key(tenant=other_tenant, scopes=["admin"])).post(
        "/api/v1/webhooks/", {"url": "http://hooks:8080/1"}, format="json")

    assert created == [201, 201, 201]
    assert (r.status_code, r.json()["error"]["code"], r.json()["error"]["details"]) == (400, "limit_exceeded", {"limit": 3})
    assert WebhookSubscription.objects.filter(tenant=tenant).count() == 3
    assert other.status_code == 201


def test_webhook_max_per_tenant__default__25():
    from django.conf import settings

    assert settings.WEBHOOK_MAX_PER_TENANT == 25


@pytest.mark.django_db
def test_admin_add_webhook__tenant_at_its_cap__form_error_nothing_created(tenant, admin_user, client, settings):
    from events.models import WebhookSubscription

    settings.WEBHOOK_MAX_PER_TENANT = 1
    make.webhook(tenant, "http://hooks:8080/1")
    client.force_login(admin_user)

    r = client.post("/admin/events/webhooksubscription/add/", {
        "tenant": tenant.pk, "url": "http://hooks:8080/2", "description": "", "resource_types": "[]",
        "key_prefix": "", "environment": "", "service_name": "", "is_active": "on",
    })

    assert r.status_code == 200
    assert "a tenant has at most 1 webhook subscriptions; delete one first" in r.content.decode()
    assert WebhookSubscription.objects.filter(tenant=tenant).count() == 1
