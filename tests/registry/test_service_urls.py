"""Service URLs (config_hub/validators.py, one rule for the registry's service_url and
health_check_url, webhook URLs, the API and the admin): Docker Compose and
Kubernetes short names, IPv4 and IPv6 literals and ports are valid (before, the
seeds' own ``http://user-service:8080`` was "Enter a valid URL"); only http and
https; up to 2048 characters (before, a webhook URL over 200 characters could
never be created: the event's key was shorter)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

VALID = [
    "http://user-service:8080",
    "http://user_service:8080/health",
    "http://payments.default.svc.cluster.local:8443/v1",
    "https://api.example.com",
    "http://10.0.0.5:9000/",
    "http://[::1]:8080/health",
    "http://[2001:db8::7]/",
    "http://localhost:8000/health?deep=1",
    "https://xn--bcher-kva.example/",
]
INVALID = {
    "ftp://user-service/file": "Only http and https URLs are accepted.",
    "javascript:alert(1)": "Only http and https URLs are accepted.",
    "http://admin:pw@user-service:8080": "Credentials in the URL are not accepted.",
    "http://user-service:99999": "Enter a valid URL (Port out of range 0-65535).",
    "http://user-service:http": "Enter a valid URL (Port could not be cast to integer value as 'http').",
    "http://-bad-:80/": "Enter a valid URL (the host is not a valid host name).",
    "http://127.1/": "Enter a valid URL (an IPv4 address is four decimal numbers, e.g. 10.0.0.5).",
    "http://0x7f.0.0.1/": "Enter a valid URL (an IPv4 address is four decimal numbers, e.g. 10.0.0.5).",
    "http://[fe80::1%25eth0]/": "Enter a valid URL (the bracketed host is not an IPv6 address).",
    "http://user service/": "A URL has only printable ASCII characters and no spaces (percent-encode others; an IDN host in its xn-- form).",
    "http:///path": "Enter a valid URL (no host).",
}


@pytest.fixture
def registry_api(tenant, make_key, client_for):
    return client_for(make_key(tenant=tenant, scopes=["registry:read", "registry:write"]))


@pytest.mark.parametrize("url", VALID)
def test_register__compose_name_ip_literal_or_port__200_and_discovered(registry_api, url):
    r = registry_api.post("/api/v1/registry/register", {"service_name": "user-service", "service_url": url,
                                                       "health_check_url": url}, format="json")

    assert r.status_code == 200, r.json()
    assert (r.json()["service_url"], r.json()["health_check_url"]) == (url, url)
    assert registry_api.get("/api/v1/registry/user-service").json()["service_url"] == url


@pytest.mark.parametrize("url,message", list(INVALID.items()))
def test_register__not_an_http_url__400_naming_the_field(registry_api, url, message):
    from registry.models import Instance

    r = registry_api.post("/api/v1/registry/register", {"service_name": "user-service", "service_url": url}, format="json")
    health = registry_api.post("/api/v1/registry/register", {"service_name": "user-service", "service_url": "http://a:1",
                                                            "health_check_url": url}, format="json")

    assert (r.status_code, r.json()["error"]["details"]) == (400, {"service_url": [message]})
    assert (health.status_code, health.json()["error"]["details"]) == (400, {"health_check_url": [message]})
    assert Instance.objects.count() == 0


def test_register_service__invalid_url_from_code__refused_by_the_service(tenant):
    from core.errors import ValidationFailed
    from registry.services import instance_register

    with pytest.raises(ValidationFailed) as refused:
        instance_register(tenant=tenant, service_name="api", url="gopher://api:70", actor="t")

    assert refused.value.details == {"service_url": ["Only http and https URLs are accepted."]}


@pytest.mark.parametrize("url", VALID)
def test_webhook_create__compose_name_ip_literal_or_port__201(tenant, make_key, client_for, settings, url):
    settings.OUTBOUND_ALLOW = ["10.0.0.0/8", "2001:db8::/32"]  # internal receivers (the outbound policy)
    api = client_for(make_key(tenant=tenant, scopes=["admin"]))

    r = api.post("/api/v1/webhooks/", {"url": url}, format="json")

    assert r.status_code == 201, r.json()
    assert r.json()["url"] == url


def test_webhook_create__500_character_url__201_announced_with_the_url(tenant, make_key, client_for, django_capture_on_commit_callbacks):
    from events.models import Event

    api = client_for(make_key(tenant=tenant, scopes=["admin"]))
    url = "http://receiver:8080/hooks/" + "a" * (500 - len("http://receiver:8080/hooks/"))

    r = api.post("/api/v1/webhooks/", {"url": url}, format="json")
    updated = api.patch(f"/api/v1/webhooks/{r.json()['id']}", {"url": url + "?v=2"}, format="json")

    assert (len(url), r.status_code, updated.status_code) == (500, 201, 200)
    assert list(Event.objects.filter(resource_type="webhook").values_list("action", "key")) == [
        ("created", url), ("updated", url + "?v=2")]


def test_webhook_create__2049_character_url__400_nothing_created(tenant, make_key, client_for):
    from events.models import WebhookSubscription

    api = client_for(make_key(tenant=tenant, scopes=["admin"]))
    at_limit = "http://receiver/" + "a" * (2048 - len("http://receiver/"))

    ok = api.post("/api/v1/webhooks/", {"url": at_limit}, format="json")
    r = api.post("/api/v1/webhooks/", {"url": at_limit + "a"}, format="json")

    assert ok.status_code == 201
    assert (r.status_code, r.json()["error"]["details"]) == (
        400, {"url": ["A URL has at most 2048 characters (this one has 2049)."]})
    assert WebhookSubscription.objects.count() == 1


def test_admin_add_webhook__compose_name__created_and_bad_scheme_refused_on_the_form(tenant, admin_user, client):
    from events.models import WebhookSubscription

    client.force_login(admin_user)
    form = {"tenant": tenant.pk, "description": "", "resource_types": "[]", "key_prefix": "", "environment": "",
            "service_name": "", "is_active": "on"}

    added = client.post("/admin/events/webhooksubscription/add/", {**form, "url": "http://user-service:8080/hooks"})
    refused = client.post("/admin/events/webhooksubscription/add/", {**form, "url": "ftp://user-service/hooks"})

    assert added.status_code == 200  # the page showing the signing secret once
    assert refused.status_code == 200
    assert "Only http and https URLs are accepted." in refused.content.decode()
    assert list(WebhookSubscription.objects.values_list("url", flat=True)) == ["http://user-service:8080/hooks"]
