"""Seed 004's service tokens per tenant: a token verifies only with a secret of its
instance's tenant (the shared SERVICE_JWT_SECRET for one tenant only), secrets
rotate and revoke at once, and a token acts on its own service's entries only."""
from __future__ import annotations

import io

import jwt
import pytest
from django.core.management import call_command

from tests import factories as make

pytestmark = pytest.mark.django_db

SHARED = "a-shared-service-secret-for-tests-0123456789"


def _register(tenant, service="payment-service", url="http://127.0.0.1:9501"):
    return make.instance(tenant, service, url)


def _auth(token):
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def _beat(client, instance, token):
    return client.post("/heartbeat", {"service_id": instance.pk}, content_type="application/json", **_auth(token))


def test_shared_secret__naming_another_tenants_instance__401_nothing_registered(tenant, default_tenant, settings, client):
    from registry.models import Instance

    settings.SERVICE_JWT_SECRET = SHARED
    victim = _register(tenant)
    forged = jwt.encode({"service_id": victim.pk}, SHARED, algorithm="HS256")

    register = client.post("/api/v1/registry/register", {"service_name": "payment-service", "service_url": "http://203.0.113.66:80"},
                           content_type="application/json", **_auth(forged))
    beat = _beat(client, victim, forged)

    assert (register.status_code, beat.status_code) == (401, 401)
    assert register.json()["error"]["code"] == "not_authenticated"
    assert list(Instance.objects.filter(service__tenant=tenant).values_list("url", flat=True)) == ["http://127.0.0.1:9501"]


def test_shared_secret__default_tenant_only_unless_the_setting_names_another(tenant, default_tenant, settings, client):
    settings.SERVICE_JWT_SECRET = SHARED
    in_default, in_acme = _register(default_tenant), _register(tenant)

    before = [_beat(client, i, jwt.encode({"service_id": i.pk}, SHARED, algorithm="HS256")).status_code for i in (in_default, in_acme)]
    settings.SERVICE_JWT_SHARED_SECRET_TENANT = "acme"
    after = [_beat(client, i, jwt.encode({"service_id": i.pk, "n": 2}, SHARED, algorithm="HS256")).status_code
             for i in (in_default, in_acme)]

    assert before == [200, 401]
    assert after == [401, 200]


def test_tenant_secret__naming_another_tenants_instance__401_with_or_without_kid(tenant, other_tenant, client):
    from registry.tokens import service_token_secret_create

    theirs = _register(other_tenant)
    row, secret = service_token_secret_create(tenant=tenant, name="acme fleet", actor="t")

    plain = jwt.encode({"service_id": theirs.pk}, secret, algorithm="HS256")
    with_kid = jwt.encode({"service_id": theirs.pk}, secret, algorithm="HS256", headers={"kid": row.kid})

    assert [_beat(client, theirs, t).status_code for t in (plain, with_kid)] == [401, 401]
    assert client.get("/services/payment-service", **_auth(plain)).status_code == 401


def test_tenant_secrets__rotation__both_active_work_revoked_refused_on_the_next_request(tenant, client,
                                                                                       django_capture_on_commit_callbacks):
    from registry.tokens import service_token_secret_create, service_token_secret_revoke

    me = _register(tenant)
    old_row, old = service_token_secret_create(tenant=tenant, name="2025", actor="t")
    new_row, new = service_token_secret_create(tenant=tenant, name="2026", actor="t")
    tokens = {
        "old": jwt.encode({"service_id": me.pk}, old, algorithm="HS256"),
        "old+kid": jwt.encode({"service_id": me.pk}, old, algorithm="HS256", headers={"kid": old_row.kid}),
        "new": jwt.encode({"service_id": me.pk}, new, algorithm="HS256"),
        "new+kid": jwt.encode({"service_id": me.pk}, new, algorithm="HS256", headers={"kid": new_row.kid}),
        "old signed, new kid": jwt.encode({"service_id": me.pk}, old, algorithm="HS256", headers={"kid": new_row.kid}),
    }
    first = {name: _beat(client, me, t).status_code for name, t in tokens.items()}  # verified tokens are now cached

    with django_capture_on_commit_callbacks(execute=True):
        service_token_secret_revoke(secret=old_row, actor="user:ops")
    second = {name: _beat(client, me, t).status_code for name, t in tokens.items()}

    assert first == {"old": 200, "old+kid": 200, "new": 200, "new+kid": 200, "old signed, new kid": 401}
    assert second == {"old": 401, "old+kid": 401, "new": 200, "new+kid": 200, "old signed, new kid": 401}


def test_service_token__own_service_only__register_beat_deregister_others_403_discover_allowed(tenant, other_tenant,
                                                                                            service_token, client):
    from registry.models import Instance

    me = _register(tenant, "payment-service", "http://127.0.0.1:9501")
    sibling = _register(tenant, "payment-service", "http://127.0.0.1:9502")
    billing = _register(tenant, "billing", "http://127.0.0.1:9503")
    theirs = _register(other_tenant, "payment-service", "http://127.0.0.1:9504")
    auth = _auth(service_token(me))

    def register(name, url):
        return client.post("/api/v1/registry/register", {"service_name": name, "service_url": url},
                           content_type="application/json", **auth).status_code

    answers = {
        "register own service": register("payment-service", "http://127.0.0.1:9505"),
        "register other service": register("billing", "http://203.0.113.66:80"),
        "health own service": client.put("/api/v1/registry/health", {"service_name": "payment-service", "instance_id": me.pk},
                                         content_type="application/json", **auth).status_code,
        "health other service": client.put("/api/v1/registry/health", {"service_name": "billing", "instance_id": billing.pk},
                                           content_type="application/json", **auth).status_code,
        "discover other service": client.get("/services/billing", **auth).status_code,
        "discover (api) other service": client.get("/api/v1/registry/billing", **auth).status_code,
        "deregister other service": client.delete(f"/api/v1/registry/instances/{billing.pk}", **auth).status_code,
        "deregister other tenant": client.delete(f"/api/v1/registry/instances/{theirs.pk}", **auth).status_code,
        "deregister own sibling": client.delete(f"/api/v1/registry/instances/{sibling.pk}", **auth).status_code,
    }

    assert answers == {
        "register own service": 200, "register other service": 403, "health own service": 200, "health other service": 403,
        "discover other service": 200, "discover (api) other service": 200, "deregister other service": 403,
        "deregister other tenant": 404, "deregister own sibling": 204,
    }
    assert set(Instance.objects.values_list("url", flat=True)) == {
        "http://127.0.0.1:9501", "http://127.0.0.1:9503", "http://127.0.0.1:9504", "http://127.0.0.1:9505"}


def test_tenant_secret__stored_encrypted_never_in_events(tenant):
    from django.db import connection

    from events.models import Event
    from registry.tokens import service_token_secret_create

    row, secret = service_token_secret_create(tenant=tenant, actor="t")

    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM registry_servicetokensecret WHERE id = %s", [row.pk])
        stored = cursor.fetchone()[0]
    assert secret not in stored and stored.startswith("gAAAAA")  # a Fernet token
    assert len(secret) >= 43
    event = Event.objects.get(resource_type="service_token_secret", action="created")
    assert event.data == {"kid": row.kid, "name": ""} and secret not in str(event.data)


def test_manage_service_token_secret__create_list_revoke(tenant, client):
    me = _register(tenant)
    out = io.StringIO()

    call_command("service_token_secret", "create", "--tenant", "acme", "--name", "fleet", stdout=out)
    kid, secret = out.getvalue().strip().split("\t")
    token = jwt.encode({"service_id": me.pk}, secret, algorithm="HS256", headers={"kid": kid})
    works = _beat(client, me, token).status_code
    listing = io.StringIO()
    call_command("service_token_secret", "list", "--tenant", "acme", stdout=listing)
    call_command("service_token_secret", "revoke", kid, stdout=io.StringIO())

    assert works == 200
    assert listing.getvalue() == f"{kid}\tacme\tactive\tfleet\n" and secret not in listing.getvalue()
    assert _beat(client, me, token).status_code == 401


def test_admin_add_service_token_secret__shown_once_then_never(tenant, admin_user, client):
    from registry.models import ServiceTokenSecret

    client.force_login(admin_user)

    r = client.post("/admin/registry/servicetokensecret/add/", {"tenant": tenant.pk, "name": "fleet"})

    row = ServiceTokenSecret.objects.get(tenant=tenant)
    assert r.status_code == 200 and "no-store" in r["Cache-Control"]
    assert '<code id="new-service-token-secret"' in r.content.decode()
    assert row.secret in r.content.decode()
    change = client.get(f"/admin/registry/servicetokensecret/{row.pk}/change/").content.decode()
    listing = client.get("/admin/registry/servicetokensecret/").content.decode()
    assert row.kid in change and row.kid in listing
    assert row.secret not in change and row.secret not in listing
    assert all(row.secret not in c for c in (m.value for m in client.cookies.values()))


def test_admin_revoke_service_token_secret__its_tokens_refused(tenant, admin_user, client):
    from django.test import Client

    from registry.tokens import service_token_secret_create

    me = _register(tenant)
    row, secret = service_token_secret_create(tenant=tenant, actor="t")
    token = jwt.encode({"service_id": me.pk}, secret, algorithm="HS256")
    service = Client()
    assert _beat(service, me, token).status_code == 200
    client.force_login(admin_user)

    r = client.post("/admin/registry/servicetokensecret/", {"action": "revoke", "_selected_action": [row.pk]})

    assert r.status_code == 302
    assert _beat(service, me, token).status_code == 401
