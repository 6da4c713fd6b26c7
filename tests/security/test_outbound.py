"""The outbound policy (config_hub/outbound.py): webhooks and active checks may not
reach the hub's own network in production (an SSRF with an oracle before), the
address that was checked is the one connected to, and a refused delivery is shown
as "blocked" and nothing more.

Only loopback is ever connected to (the test suite refuses other addresses):
the policy function is tested on the other forms, the whole path on 127.0.0.1.
"""
from __future__ import annotations

import datetime
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests import factories as make
from tests.receiver import Receiver

pytestmark = pytest.mark.django_db

REFUSED = [
    "127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", "::127.0.0.1", "0.0.0.0", "::",
    "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "fc00::1", "fd12:3456::1",
    "169.254.169.254", "fe80::1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "2002:7f00:1::1", "2002:a00:1::1",
    "224.0.0.1", "ff02::1", "255.255.255.255", "240.0.0.1", "192.0.2.1", "198.18.0.1",
]


@pytest.fixture
def production(settings):
    """The production policy (DJANGO_DEBUG=false, no OUTBOUND_ALLOW)."""
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    settings.OUTBOUND_ALLOW = []
    return settings


@pytest.fixture
def fake_dns(monkeypatch):
    """``fake_dns({"hook.example": ["8.8.8.8", "127.0.0.1"]})``: successive answers for
    a name (the last one repeats); other names resolve as usual. Returns the list of
    names asked for."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def install(answers: dict[str, list[str]]):
        def getaddrinfo(host, port, *args, **kwargs):
            if host in answers:
                asked.append(host)
                queue = answers[host]
                address = queue.pop(0) if len(queue) > 1 else queue[0]
                return real(address, port, *args, **kwargs)
            return real(host, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        return asked

    return install


def _delivery_for(tenant, url):
    """A subscription to ``url`` and one due delivery of a config change."""
    from events.dispatch import event_dispatch
    from events.models import Event, WebhookDelivery

    sub = make.webhook(tenant, url, resource_types=["config"])
    make.config(tenant, "feature.banner", "on")
    event_dispatch(event_id=Event.objects.get(resource_type="config", key="feature.banner").pk)
    return sub, WebhookDelivery.objects.get(subscription=sub)


# --- the policy function ------------------------------------------------------------------


@pytest.mark.parametrize("address", REFUSED)
def test_address_allowed__internal_or_special_address_in_production__refused(production, address):
    from core.outbound import address_allowed

    assert address_allowed(address) is False


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2002:808:808::1"])
def test_address_allowed__public_address_in_production__allowed(production, address):
    from core.outbound import address_allowed

    assert address_allowed(address) is True


def test_address_allowed__allow_list_cidr__that_network_only_and_its_mapped_form(production):
    from core.outbound import address_allowed

    production.OUTBOUND_ALLOW = ["10.20.0.0/16", "fd00:1::/32"]

    assert [address_allowed(a) for a in ("10.20.3.4", "::ffff:10.20.3.4", "fd00:1::5", "10.21.0.1", "127.0.0.1")] == [
        True, True, True, False, False]


def test_address_allowed__embedded_default__loopback_only(settings):
    from core.outbound import address_allowed

    settings.OUTBOUND_ALLOW_LOOPBACK = True
    settings.OUTBOUND_ALLOW = []

    assert [address_allowed(a) for a in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "10.0.0.1", "169.254.169.254", "0.0.0.0")] == [
        True, True, True, False, False, False]


# --- create time ----------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:6379/", "http://[::1]:5432/", "http://[::ffff:127.0.0.1]:6379/", "http://10.0.0.8/hook",
    "http://169.254.169.254/latest/meta-data/", "http://0.0.0.0:8000/", "http://localhost:6379/",
])
def test_webhook_create__blocked_literal_host_in_production__400_nothing_created(production, tenant, make_key, client_for, url):
    from events.models import WebhookSubscription

    api = client_for(make_key(tenant=tenant, scopes=["admin"]))

    r = api.post("/api/v1/webhooks/", {"url": url}, format="json")

    assert r.status_code == 400
    assert r.json()["error"]["details"]["url"] == [
        "the hub may not call this address (loopback, private, link-local or reserved); "
        "an operator can allow internal receivers with OUTBOUND_ALLOW"]
    assert not WebhookSubscription.objects.exists()


def test_webhook_create__allow_listed_internal_address_in_production__201(production, tenant, make_key, client_for):
    production.OUTBOUND_ALLOW = ["10.0.0.0/8"]
    api = client_for(make_key(tenant=tenant, scopes=["admin"]))

    r = api.post("/api/v1/webhooks/", {"url": "http://10.0.0.8/hook"}, format="json")

    assert r.status_code == 201


# --- send time --------------------------------------------------------------------------------


def test_delivery__loopback_receiver_in_production__blocked_not_sent_log_says_blocked_only(settings, tenant, make_key, client_for):
    from events.dispatch import delivery_attempt

    with Receiver() as receiver:
        # Made while the policy allowed it (DNS and settings change): re-checked at send time.
        sub, delivery = _delivery_for(tenant, receiver.url)
        settings.OUTBOUND_ALLOW_LOOPBACK = False

        outcome = delivery_attempt(delivery_id=delivery.pk).outcome

    assert outcome == "blocked"
    assert receiver.requests == []
    rows = client_for(make_key(tenant=tenant, scopes=["events:read"])).get(f"/api/v1/webhooks/{sub.pk}/deliveries/").json()
    assert [(d["status"], d["response_code"], d["last_error"]) for d in rows] == [
        ("blocked", None, "blocked by the outbound policy")]
    assert [(a["response_code"], a["error"], a["duration_ms"]) for a in rows[0]["attempt_log"]] == [
        (None, "blocked by the outbound policy", 0.0)]


def test_delivery__name_resolving_to_loopback_in_production__blocked(settings, tenant):
    from events.dispatch import delivery_attempt
    from events.models import WebhookDelivery

    with Receiver() as receiver:
        _sub, delivery = _delivery_for(tenant, receiver.url.replace("127.0.0.1", "localhost"))
        settings.OUTBOUND_ALLOW_LOOPBACK = False

        outcome = delivery_attempt(delivery_id=delivery.pk).outcome

    assert (outcome, receiver.requests) == ("blocked", [])
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == "blocked"


def test_delivery__loopback_receiver_allow_listed_in_production__delivered(production, tenant):
    from events.dispatch import delivery_attempt

    production.OUTBOUND_ALLOW = ["127.0.0.0/8"]
    with Receiver() as receiver:
        _sub, delivery = _delivery_for(tenant, receiver.url)

        outcome = delivery_attempt(delivery_id=delivery.pk).outcome

    assert outcome == "succeeded"
    assert len(receiver.requests) == 1


def test_delivery_batch__allowed_name_failing_receiver_refused_literal__each_recorded_name_resolved_once(settings, fake_dns, tenant):
    from events.dispatch import deliveries_attempt, event_dispatch
    from events.models import DeliveryAttempt, Event, WebhookDelivery

    with Receiver() as ok, Receiver(fail_first=100) as failing:
        name = "hooks.internal.example"
        urls = {"sent": f"http://{name}:{ok.server.server_address[1]}/hook/a",
                "failing": f"http://{name}:{failing.server.server_address[1]}/hook/b",
                "refused": ok.url.replace("/hook", "/hook/c"),
                "sent too": f"http://{name}:{ok.server.server_address[1]}/hook/d"}
        subs = {label: make.webhook(tenant, url, resource_types=["config"]) for label, url in urls.items()}
        make.config(tenant, "feature.banner", "on")
        fanout = event_dispatch(event_id=Event.objects.get(resource_type="config", key="feature.banner").pk)
        # Production, with one internal name allowed (the literal loopback address is not).
        settings.OUTBOUND_ALLOW_LOOPBACK = False
        settings.OUTBOUND_ALLOW = [name]
        asked = fake_dns({name: ["127.0.0.1"]})

        outcomes = deliveries_attempt(delivery_ids=fanout.to_send)

    by_sub = {d.subscription_id: d for d in WebhookDelivery.objects.filter(pk__in=fanout.to_send)}
    got = {label: (outcomes[by_sub[sub.pk].pk].outcome, by_sub[sub.pk].status,
                   list(DeliveryAttempt.objects.filter(delivery=by_sub[sub.pk]).values_list("response_code", "error")))
           for label, sub in subs.items()}
    assert got == {
        "sent": ("succeeded", "succeeded", [(200, "")]),
        "failing": ("retrying", "retrying", [(500, "HTTP 500")]),
        "refused": ("blocked", "blocked", [(None, "blocked by the outbound policy")]),
        "sent too": ("succeeded", "succeeded", [(200, "")]),
    }
    assert sorted(r["path"] for r in ok.requests) == ["/hook/a", "/hook/d"]
    assert asked == [name]  # once for the whole batch
    assert {r["headers"]["host"] for r in ok.requests} == {f"{name}:{ok.server.server_address[1]}"}


def test_send__name_rebinds_to_loopback_after_check__never_reaches_loopback(production, fake_dns):
    from core.outbound import send

    with Receiver() as receiver:
        port = receiver.server.server_address[1]
        # First answer public (passes the check), every later answer loopback.
        asked = fake_dns({"rebind.example": ["93.184.216.34", "127.0.0.1"]})

        outcome = send("POST", f"http://rebind.example:{port}/hook", body=b"{}", connect_timeout=1, total_timeout=2)

    # The checked public address was the one dialled (the test suite refuses it).
    assert (outcome.status, outcome.error, outcome.blocked) == (None, "connection failed", False)
    assert asked == ["rebind.example"]
    assert receiver.requests == []


def test_send__allow_listed_host_name__connects_to_resolved_address_with_original_host_header(production, fake_dns):
    from core.outbound import send

    production.OUTBOUND_ALLOW = [".internal.example"]
    with Receiver() as receiver:
        port = receiver.server.server_address[1]
        fake_dns({"hooks.internal.example": ["127.0.0.1"]})

        outcome = send("POST", f"http://hooks.internal.example:{port}/hook?x=1", body=b"{}", connect_timeout=1, total_timeout=2)

    assert (outcome.status, outcome.blocked) == (200, False)
    assert receiver.requests[0]["headers"]["host"] == f"hooks.internal.example:{port}"


def test_send__https_to_pinned_address__sni_is_the_url_host_and_certificate_checked(production, fake_dns, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from core.outbound import send

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hooks.internal.example")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("hooks.internal.example")]), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    seen: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    context.sni_callback = lambda sock, server_name, ctx: seen.append(server_name)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = listener.accept()
        try:
            context.wrap_socket(conn, server_side=True).close()
        except (ssl.SSLError, OSError):
            pass

    threading.Thread(target=serve, daemon=True).start()
    production.OUTBOUND_ALLOW = ["hooks.internal.example"]
    fake_dns({"hooks.internal.example": ["127.0.0.1"]})

    outcome = send("POST", f"https://hooks.internal.example:{listener.getsockname()[1]}/hook", body=b"{}",
                   connect_timeout=1, total_timeout=2)
    listener.close()

    # A self-signed certificate is not trusted: verification is on, against the URL's host.
    assert (outcome.status, outcome.error) == (None, "tls error")
    assert seen == ["hooks.internal.example"]


class Trickle:
    """Answers a status line, then one header line every 0.3 s for ``seconds``."""

    def __init__(self, seconds: float):
        self.stop = threading.Event()
        trickle = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                self.wfile.flush()
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline and not trickle.stop.wait(0.3):
                    self.wfile.write(b"x-slow: 1\r\n")
                    self.wfile.flush()
                self.wfile.write(b"content-length: 0\r\n\r\n")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def test_delivery__receiver_trickles_headers__attempt_ends_at_the_total_deadline(settings, tenant):
    from events.dispatch import delivery_attempt
    from events.models import DeliveryAttempt

    settings.WEBHOOK_TIMEOUT = 1.5
    settings.WEBHOOK_CONNECT_TIMEOUT = 1.0
    trickle = Trickle(seconds=8)
    try:
        _sub, delivery = _delivery_for(tenant, trickle.url)
        started = time.monotonic()

        outcome = delivery_attempt(delivery_id=delivery.pk).outcome
        elapsed = time.monotonic() - started
    finally:
        trickle.close()

    assert outcome == "retrying"
    assert elapsed < 3.0
    assert list(DeliveryAttempt.objects.filter(delivery=delivery).values_list("response_code", "error")) == [(None, "timeout")]


class RawAnswers:
    """Answers every request on a connection with ``answer`` (raw bytes), keeping the
    connection open; counts connections and requests."""

    def __init__(self, answer: bytes):
        self.connections = self.requests = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"
        threading.Thread(target=self._accept, args=(answer,), daemon=True).start()

    def _accept(self, answer: bytes) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, answer), daemon=True).start()

    def _serve(self, conn: socket.socket, answer: bytes) -> None:
        buffer = b""
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                while b"\r\n\r\n" in buffer:
                    head, _, rest = buffer.partition(b"\r\n\r\n")
                    length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                                       if line.lower().startswith(b"content-length:")), b"0"))
                    if len(rest) < length:
                        break
                    buffer = rest[length:]
                    self.requests += 1
                    try:
                        conn.sendall(answer)
                    except OSError:
                        return

    def close(self) -> None:
        self.listener.close()


@pytest.mark.parametrize(("answer", "expected", "connections"), [
    (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", (200, ""), 1),
    (b"HTTP/1.1 202 Accepted\r\ncontent-length: 1048576\r\n\r\n" + b"x" * 1048576, (202, ""), 3),
    (b"HTTP/1.1 503 Busy\r\ncontent-length: 4\r\n\r\nbusy", (503, "HTTP 503"), 1),
    (b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n", (200, ""), 3),
    (b"SMTP ready\r\n\r\n", (None, "bad response"), 3),
])
def test_sender__answer_shapes__status_recorded_body_thrown_away_connection_kept_when_it_can_be(answer, expected, connections):
    from core.outbound import Sender, run

    server = RawAnswers(answer)

    async def three():
        async with Sender(connect_timeout=1, total_timeout=2, concurrency=1) as sender:
            return [await sender.send("POST", server.url, body=b"{}") for _ in range(3)]

    try:
        outcomes = run(three())
    finally:
        server.close()

    assert [(o.status, o.error) for o in outcomes] == [expected] * 3
    # A short, complete answer leaves its connection for the next request; a long
    # body (over 64 KiB), "connection: close" or garbage do not.
    assert server.connections == connections


# --- active checks ------------------------------------------------------------------------------


def test_active_checks__loopback_health_url_in_production__not_probed_status_unchanged(production, tenant):
    from django.core.cache import cache

    from registry.checks import instance_active_checks
    from registry.models import Instance
    from tests.registry.test_active_checks import HealthEndpoint

    production.REGISTRY_ACTIVE_CHECKS = True
    production.REGISTRY_CHECK_FAILURES = 1
    endpoint = HealthEndpoint(code=500)
    try:
        instance = make.instance(tenant, "api", "http://api:8080", health_check_url=endpoint.url)
        results = []
        for _ in range(2):
            cache.delete("registry:checks-lock")
            results.append(instance_active_checks())
    finally:
        endpoint.close()

    assert results == [{"probed": 1, "down": 0, "up": 0, "blocked": 1}] * 2
    assert endpoint.probes == 0
    assert Instance.objects.get(pk=instance.pk).status == "healthy"
