"""Comparing two environments, for the tenant or for one service: the selector
(tenants.selectors.environments_compare), GET /api/v1/environments/compare and the
admin's compare page, which all answer the same differences."""
from __future__ import annotations

import pytest

from tests import factories as make

pytestmark = pytest.mark.django_db


@pytest.fixture
def user_service_db(tenant, environments):
    """user-service reads database.url from its own entries, which differ per environment;
    the tenant-wide entries are equal in both."""
    for env in ("development", "production"):
        make.config(tenant, "database.url", "postgresql://shared/app", environment=environments[env])
    make.config(tenant, "database.url", "postgresql://localhost:5432/users_dev", environment=environments["development"],
                service_name="user-service")
    make.config(tenant, "database.url", "postgresql://prod-db:5432/users", environment=environments["production"],
                service_name="user-service")
    return environments


def _compare(tenant, environments, source, target, **kwargs):
    from tenants.compare import environments_compare

    return environments_compare(tenant=tenant, source=environments[source], target=environments[target], **kwargs)


def test_compare__service_scoped_entries_differ__listed_for_that_service_only(tenant, user_service_db):
    for_tenant = _compare(tenant, user_service_db, "development", "production")
    for_service = _compare(tenant, user_service_db, "development", "production", service_name="user-service")
    for_other = _compare(tenant, user_service_db, "development", "production", service_name="billing")

    assert for_tenant == [] and for_other == []
    assert for_service == [{
        "key": "database.url",
        "from": {"value": "postgresql://localhost:5432/users_dev", "source": "tenant+environment+service", "is_secret": False},
        "to": {"value": "postgresql://prod-db:5432/users", "source": "tenant+environment+service", "is_secret": False},
    }]


def test_compare__key_in_one_environment_only__listed_with_no_source_on_the_other(tenant, environments):
    make.config(tenant, "feature.banner", "hello", environment=environments["staging"])

    assert _compare(tenant, environments, "staging", "production") == [{
        "key": "feature.banner",
        "from": {"value": "hello", "source": "tenant+environment", "is_secret": False},
        "to": {"value": None, "source": None, "is_secret": False},
    }]
    assert _compare(tenant, environments, "production", "staging")[0]["from"]["source"] is None


def test_compare__json_types__1_and_true_and_1_0_are_different_values(tenant, environments):
    make.config(tenant, "retries", 1, environment=environments["staging"])
    make.config(tenant, "retries", True, environment=environments["production"])
    make.config(tenant, "same", {"a": 1, "b": 2}, environment=environments["staging"])
    make.config(tenant, "same", {"b": 2, "a": 1}, environment=environments["production"])

    assert [d["key"] for d in _compare(tenant, environments, "staging", "production")] == ["retries"]


def test_compare__schema_default_stands_in__equal_to_the_entry__no_difference(tenant, environments):
    make.schema("pool.size", {"type": "integer"}, default_value=10)
    make.config(tenant, "pool.size", 10, environment=environments["staging"])
    make.config(tenant, "pool.max", 5, environment=environments["staging"])

    diff = _compare(tenant, environments, "staging", "production")

    assert [d["key"] for d in diff] == ["pool.max"]


def test_compare__secret__masked_unless_reveal__compared_by_value(tenant, environments):
    make.secret(tenant, "db.password", "dev-pass-123", environment=environments["development"])
    make.secret(tenant, "db.password", "prod-pass-456", environment=environments["production"])
    make.secret(tenant, "api.token", "same-token", environment=environments["development"])
    make.secret(tenant, "api.token", "same-token", environment=environments["production"])

    masked = _compare(tenant, environments, "development", "production")
    revealed = _compare(tenant, environments, "development", "production", reveal=True)

    assert masked == [{"key": "db.password",
                       "from": {"value": None, "source": "tenant+environment", "is_secret": True, "masked": True},
                       "to": {"value": None, "source": "tenant+environment", "is_secret": True, "masked": True}}]
    assert [(d["from"]["value"], d["to"]["value"]) for d in revealed] == [("dev-pass-123", "prod-pass-456")]


# --- the API -------------------------------------------------------------------------------------


def test_api_compare__service__answers_the_difference(tenant, user_service_db, make_key, client_for):
    api = client_for(make_key(tenant=tenant, scopes=["configs:read"]))

    r = api.get("/api/v1/environments/compare?from=development&to=production&service=user-service")
    without = api.get("/api/v1/environments/compare?from=development&to=production")

    assert r.status_code == 200, r.content
    assert r.json() == {"differences": [{
        "key": "database.url",
        "from": {"value": "postgresql://localhost:5432/users_dev", "source": "tenant+environment+service", "is_secret": False},
        "to": {"value": "postgresql://prod-db:5432/users", "source": "tenant+environment+service", "is_secret": False},
    }]}
    assert without.json() == {"differences": []}


def test_api_compare__secrets__masked_without_secrets_read(tenant, environments, make_key, client_for):
    make.secret(tenant, "db.password", "dev-pass-123", environment=environments["development"])
    reader = client_for(make_key(tenant=tenant, scopes=["configs:read"]))
    revealer = client_for(make_key(tenant=tenant, scopes=["configs:read", "secrets:read"]))
    url = "/api/v1/environments/compare?from=development&to=production"

    masked, revealed = reader.get(url), revealer.get(url)

    assert "dev-pass-123" not in masked.content.decode()
    assert masked.json()["differences"][0]["from"] == {"value": None, "source": "tenant+environment", "is_secret": True,
                                                       "masked": True}
    assert revealed.json()["differences"][0]["from"]["value"] == "dev-pass-123"


@pytest.mark.parametrize("query, field", [
    ("from=development", "to"),
    ("to=production", "from"),
    ("from=development&to=nowhere", "to"),
    ("from=development&to=production&enviroment=x", "enviroment"),
    ("from=production&to=production", "to"),
])
def test_api_compare__bad_query__400_naming_the_parameter(query, field, tenant, environments, make_key, client_for):
    api = client_for(make_key(tenant=tenant, scopes=["configs:read"]))

    r = api.get(f"/api/v1/environments/compare?{query}")

    assert r.status_code == 400, r.content
    assert field in r.json()["error"]["details"]


def test_api_compare__other_tenants_values__never_seen(tenant, other_tenant, environments, make_key, client_for):
    make.config(other_tenant, "their.key", "theirs", environment=environments["production"])
    api = client_for(make_key(tenant=tenant, scopes=["configs:read"]))

    r = api.get("/api/v1/environments/compare?from=development&to=production")

    assert r.json() == {"differences": []}


def test_api_compare__no_configs_read_scope__403(tenant, environments, make_key, client_for):
    api = client_for(make_key(tenant=tenant, scopes=["flags:read"]))

    assert api.get("/api/v1/environments/compare?from=development&to=production").status_code == 403


# --- the admin page ------------------------------------------------------------------------------


def _query(tenant, environments, source, target, service=""):
    return f"?tenant={tenant.pk}&source={environments[source].pk}&target={environments[target].pk}&service={service}"


def test_admin_compare__service_chosen__shows_the_service_scoped_difference(tenant, user_service_db, admin_user, client):
    client.force_login(admin_user)

    for_tenant = client.get("/admin/compare/" + _query(tenant, user_service_db, "development", "production"))
    for_service = client.get("/admin/compare/" + _query(tenant, user_service_db, "development", "production", "user-service"))

    assert 'id="no-differences"' in for_tenant.content.decode()
    body = for_service.content.decode()
    table = body[body.index('id="diff-table"'):body.index("</table>", body.index('id="diff-table"'))]
    assert "database.url" in table and "users_dev" in table and "prod-db:5432/users" in table
    assert '<option value="user-service" selected>' in body


def test_admin_promote__for_a_service__writes_the_service_scope_with_the_reason(
        tenant, user_service_db, admin_user, client):
    from events.models import Event
    from tenants.models import ConfigEntry
    from tenants.selectors import config_resolve

    client.force_login(admin_user)
    url = "/admin/compare/" + _query(tenant, user_service_db, "development", "production", "user-service")

    r = client.post(url, {"keys": ["database.url"], "confirm": "1", "change_reason": "OPS-7 point prod at dev db"})

    assert r.status_code == 302
    resolved = config_resolve(tenant=tenant, key="database.url", environment="production", service_name="user-service")
    assert (resolved.value, resolved.source) == ("postgresql://localhost:5432/users_dev", "tenant+environment+service")
    assert config_resolve(tenant=tenant, key="database.url", environment="production").value == "postgresql://shared/app"
    event = Event.objects.filter(key="database.url", environment="production").latest("id")
    assert event.data["reason"] == "OPS-7 point prod at dev db"
    entry = ConfigEntry.objects.get(key="database.url", environment=user_service_db["production"], service_name="user-service")
    assert entry.history.latest("history_id").history_change_reason == "OPS-7 point prod at dev db"
