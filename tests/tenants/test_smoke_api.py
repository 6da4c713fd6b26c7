"""First end-to-end checks of the config routes (the full suite lives beside it)."""
import pytest

from tests import factories as make

pytestmark = pytest.mark.django_db


def test_resolve__tenant_scope_beats_global__returns_tenant_value(tenant, make_key, client_for):
    make.config(None, "retry.max", 3)
    make.config(tenant, "retry.max", 5)
    client = client_for(make_key(tenant=tenant, scopes=["configs:read"]))

    response = client.get("/api/v1/config/retry.max")

    assert response.status_code == 200
    assert response.json()["value"] == 5
    assert response.json()["source"] == "tenant"
