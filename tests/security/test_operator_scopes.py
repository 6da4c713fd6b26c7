"""Operators' JWTs carry the scopes their Django permissions grant, no more."""
from __future__ import annotations

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from tests import factories as make

pytestmark = pytest.mark.django_db

SECRET = "operator-scope-secret-7c1"


@pytest.fixture
def configs(tenant):
    plain = make.config(tenant, "ui.theme", "dark")
    make.config(tenant, "db.password", SECRET, is_secret=True)
    return plain


def _operator(django_user_model, client_for, *perms: str, staff: bool = True):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user(f"op{len(perms)}{staff}", password="pw-operator-123", is_staff=staff)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    return client


def test_staff_without_permissions__reads_nothing_in_any_tenant(configs, django_user_model, client_for):
    op = _operator(django_user_model, client_for)

    responses = [
        op.get("/api/v1/config/ui.theme", HTTP_X_TENANT_ID="acme"),
        op.get("/api/v1/configs/?tenant=acme"),
        op.post("/api/v1/feature-flags/evaluate", {"flag_name": "x", "environment": "production"}, format="json"),
        op.get("/api/v1/registry/healthy", HTTP_X_TENANT_ID="acme"),
        op.get("/api/v1/events/"),
    ]

    assert [r.status_code for r in responses] == [403] * 5
    assert all("dark" not in r.content.decode() for r in responses)


def test_view_permission__reads_but_cannot_write_nor_see_secrets(configs, django_user_model, client_for):
    op = _operator(django_user_model, client_for, "view_configentry")

    read = op.get("/api/v1/config/ui.theme", HTTP_X_TENANT_ID="acme")
    secret = op.get("/api/v1/config/db.password", HTTP_X_TENANT_ID="acme")
    write = op.put(f"/api/v1/config/{configs.pk}", {"value": "light"}, format="json")

    assert (read.status_code, read.json()["value"]) == (200, "dark")
    assert (secret.status_code, secret.json()["value"], secret.json()["masked"]) == (200, None, True)
    assert write.status_code == 403


def test_change_and_reveal_permissions__write_and_see_secrets(configs, django_user_model, client_for):
    op = _operator(django_user_model, client_for, "change_configentry", "reveal_secret")

    write = op.put(f"/api/v1/config/{configs.pk}", {"value": "light"}, format="json")
    secret = op.get("/api/v1/config/db.password", HTTP_X_TENANT_ID="acme")

    assert (write.status_code, write.json()["value"]) == (200, "light")
    assert secret.json()["value"] == SECRET
