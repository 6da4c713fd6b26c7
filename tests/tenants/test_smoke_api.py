"""First end-to-end checks of the config routes (the full suite lives beside it)."""
import pytest

pytestmark = pytest.mark.django_db


def test_resolve__tenant_scope_beats_global__returns_tenant_value(tenant, make_key, client_for):
    from tenants.services.configs import config_create

    config_create(tenant=None, key="retry.max", value=3, actor="test")
    config_create(tenant=tenant, key="retry.max", value=5, actor="test")
    client = client_for(make_key(tenant=tenant, scopes=["configs:read"]))

    response = client.get("/api/v1/config/retry.max")

    assert response.status_code == 200
    assert response.json()["value"] == 5
    assert response.json()["source"] == "tenant"
