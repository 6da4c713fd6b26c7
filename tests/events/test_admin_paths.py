"""Webhook subscriptions in the admin: deletes through events.services, and the
signing secret shown once in the page, never in a cookie."""
from __future__ import annotations

import json

import pytest

from tests import factories as make
from tests.tenants.test_admin_paths import cookie_texts

pytestmark = pytest.mark.django_db


def test_admin_bulk_delete_webhooks__event_with_actor(tenant, admin_user, client, django_capture_on_commit_callbacks):
    from events.models import Event, WebhookSubscription

    sub = make.webhook(tenant, "http://127.0.0.1:9/hook")
    client.force_login(admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        r = client.post("/admin/events/webhooksubscription/", {"action": "delete_selected", "post": "yes",
                                                                "_selected_action": [sub.pk]})

    assert r.status_code == 302
    assert not WebhookSubscription.objects.filter(pk=sub.pk).exists()
    assert list(Event.objects.filter(resource_type="webhook", action="deleted").values_list("actor", flat=True)) == ["user:root"]


def test_admin_add_webhook__secret_in_the_page_never_in_a_cookie(tenant, admin_user, client):
    from events.models import WebhookSubscription

    client.force_login(admin_user)

    r = client.post("/admin/events/webhooksubscription/add/", {
        "tenant": tenant.pk, "url": "http://127.0.0.1:9/hook", "description": "", "resource_types": "[]",
        "key_prefix": "", "environment": "", "service_name": "", "is_active": "on",
    })

    secret = WebhookSubscription.objects.get(url="http://127.0.0.1:9/hook").secret
    assert not any(secret in text for text in cookie_texts(r))
    assert r.status_code == 200, r.content[:2000]
    assert 'id="webhook-secret"' in r.content.decode() and secret in r.content.decode()
    assert secret not in json.dumps(dict(client.session))
