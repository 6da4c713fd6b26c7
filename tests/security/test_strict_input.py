"""Unknown body fields and query parameters are refused, naming them, and nothing
is written: a typo never widens a write or a filter. Enumerations (webhook
resource types, environments) are checked."""
from __future__ import annotations

import pytest

from core.api.principal import ALL_SCOPES
from tests import factories as make

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(tenant, environments, make_key, client_for):
    return client_for(make_key(tenant=tenant, scopes=sorted(ALL_SCOPES - {"admin"}) + ["admin"], name="all"))


def _unknown(response, *names: str) -> None:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "unknown_fields"
    for name in names:
        assert name in error["message"]
        assert name in error["details"]


# --- configs ---------------------------------------------------------------------------


def test_config_post__misspelt_environment__400_naming_it_and_nothing_created(api):
    from tenants.models import ConfigEntry

    response = api.post("/api/v1/config/", {"key": "db.url", "value": "postgres://prod", "enviroment": "staging"},
                        format="json")

    _unknown(response, "enviroment")
    assert response.json()["error"]["details"] == {"enviroment": ["Unknown field."]}
    assert not ConfigEntry.objects.filter(key="db.url").exists()


def test_config_post__camel_case_is_secret__400_and_nothing_stored_in_plain(api):
    from tenants.models import ConfigEntry

    response = api.post("/api/v1/config/", {"key": "smtp.password", "value": "hunter2", "isSecret": True}, format="json")

    _unknown(response, "isSecret")
    assert not ConfigEntry.objects.filter(key="smtp.password").exists()


def test_config_post__unknown_field_and_a_bad_value__both_reported(api):
    response = api.post("/api/v1/config/", {"key": "a b", "value": 1, "colour": "red"}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert set(error["details"]) == {"key", "colour"}
    assert "unknown field: colour" in error["message"]


def test_config_post__every_field_seed_001_sends__still_accepted(api):
    response = api.post("/api/v1/config/", {"key": "database.url", "value": "postgresql://db:5432/mydb",
                                            "environment": "production", "service_name": "user-service",
                                            "description": "Database connection URL", "is_encrypted": False},
                        format="json")

    assert response.status_code == 201, response.content


def test_config_put_and_patch__unknown_field__400_and_value_unchanged(api, tenant):

    entry = make.config(tenant, "retry.max", 3)

    _unknown(api.put(f"/api/v1/config/{entry.pk}", {"value": 5, "environment": "staging"}, format="json"), "environment")
    _unknown(api.patch(f"/api/v1/config/{entry.pk}", {"value": 5, "is_secert": True}, format="json"), "is_secert")
    entry.refresh_from_db()
    assert (entry.value, entry.version, entry.is_secret) == (3, 1, False)


def test_seed_000_put__unknown_field__400_and_nothing_written(api, tenant):
    from tenants.models import ConfigEntry

    response = api.put(f"/config/tenants/{tenant.slug}/configs/email_notifications",
                       {"config_value": {"enabled": True}, "config_vaule": 1}, format="json")

    _unknown(response, "config_vaule")
    assert not ConfigEntry.objects.filter(key="email_notifications").exists()


def test_schema_post__unknown_field__400(tenant, environments, make_key, client_for):
    from tenants.models import ConfigSchema

    platform = client_for(make_key(tenant=None, scopes=["admin", "configs:read"], name="platform"))
    response = platform.post("/api/v1/schemas/", {"key": "limits", "schema": {"type": "object"}, "requird": True},
                             format="json")

    _unknown(response, "requird")
    assert not ConfigSchema.objects.filter(key="limits").exists()


def test_tenant_and_environment_bodies__unknown_field__400(environments, make_key, client_for):
    from tenants.models import Environment, Tenant

    platform = client_for(make_key(tenant=None, scopes=["admin"], name="platform"))

    _unknown(platform.post("/api/v1/tenants/", {"slug": "initech", "is_actve": False}, format="json"), "is_actve")
    _unknown(platform.post("/api/v1/environments/", {"slug": "qa", "title": "QA"}, format="json"), "title")
    assert not Tenant.objects.filter(slug="initech").exists()
    assert not Environment.objects.filter(slug="qa").exists()


def test_config_revert__unknown_field__400(api, tenant):
    entry = make.config(tenant, "k", 1)

    _unknown(api.post(f"/api/v1/configs/{entry.pk}/revert", {"history_id": 1, "force": True}, format="json"), "force")


def test_token_obtain__unknown_field__400(admin_user, client_for):
    response = client_for().post("/api/v1/auth/token/", {"username": "root", "password": "pw-root-123", "otp": "1"},
                                 format="json")

    _unknown(response, "otp")


# --- query parameters --------------------------------------------------------------------


def test_config_list__misspelt_filter__400_never_a_wider_list(api, tenant):
    make.config(tenant, "k", 1)

    response = api.get("/api/v1/configs/?enviroment=staging")

    assert response.status_code == 400
    assert response.json()["error"] == {"code": "unknown_fields", "message": "unknown query parameter: enviroment",
                                        "details": {"enviroment": ["Unknown query parameter."]}}
    assert api.get("/api/v1/configs/?environment=staging&limit=5").status_code == 200


def test_config_list__unknown_environment__400_naming_it(api):
    response = api.get("/api/v1/configs/?environment=stagin")

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"environment": ["unknown environment 'stagin'"]}


def test_config_read__misspelt_parameter__400_not_the_tenant_wide_value(api, tenant, environments):
    make.config(tenant, "db.url", "tenant-wide")

    response = api.get("/api/v1/config/db.url?enviroment=production")

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"enviroment": ["Unknown query parameter."]}


def test_routes_without_parameters__any_parameter__400(api):
    for path in ("/api/v1/webhooks/?resource_type=config", "/api/v1/registry/healthy?status=healthy",
                 "/api/v1/events/?afer=3"):
        response = api.get(path)
        assert response.status_code == 400, path
        assert response.json()["error"]["code"] == "unknown_fields"


def test_evaluate__query_string__refused_by_the_lean_path_too(api, tenant, environments):
    make.flag(tenant, "f", environment=environments["production"], is_enabled=True)

    response = api.post("/api/v1/feature-flags/evaluate?environment=staging", {"flag_name": "f", "environment": "production"},
                        format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"environment": ["Unknown query parameter."]}


def test_discovery__metadata_filters__still_any_parameter(api, tenant):
    make.instance(tenant, "user-service", "http://10.0.0.5:8080", metadata={"region": "eu"})

    assert api.get("/api/v1/registry/user-service?region=eu").status_code == 200
    assert api.get("/api/v1/registry/user-service?region=us").status_code == 503


def test_no_credentials__unknown_parameter__still_401(client_for):
    assert client_for().get("/api/v1/configs/?enviroment=x").status_code == 401


# --- flags -------------------------------------------------------------------------------------


def test_flag_bodies__unknown_field__400_and_nothing_written(api, tenant, environments):
    from flags.models import Flag

    _unknown(api.post("/api/v1/feature-flags/", {"name": "new_ui", "environment": "production", "is_enabeld": True},
                      format="json"), "is_enabeld")
    assert not Flag.objects.filter(name="new_ui").exists()
    flag = make.flag(tenant, "f", environment=environments["production"], rollout_percentage=10)
    _unknown(api.put(f"/api/v1/feature-flags/{flag.pk}", {"rollout": 50}, format="json"), "rollout")
    _unknown(api.patch(f"/api/v1/feature-flags/{flag.pk}", {"rollout_percentage": 50, "env": "staging"}, format="json"),
             "env")
    flag.refresh_from_db()
    assert flag.version == 1


def test_flag_create__unknown_environment__400_naming_it(api):
    response = api.post("/api/v1/feature-flags/", {"name": "new_ui", "environment": "prod"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"environment": ["unknown environment 'prod'"]}


def test_evaluate_bodies__unknown_top_level_field__400_context_stays_open(api, tenant, environments):
    make.flag(tenant, "f", environment=environments["production"], is_enabled=True)

    _unknown(api.post("/api/v1/feature-flags/evaluate", {"flag_name": "f", "environment": "production", "userId": "u1"},
                      format="json"), "userId")
    _unknown(api.post("/api/v1/feature-flags/evaluate-all", {"environment": "production", "contxt": {}}, format="json"),
             "contxt")
    open_context = {"userId": "u1", "tenantPlan": "gold", "properties": {"anything": "goes"}}
    ok = api.post("/api/v1/feature-flags/evaluate", {"flag_name": "f", "environment": "production",
                                                     "context": open_context}, format="json")
    assert ok.status_code == 200 and ok.json()["enabled"] is True


def test_ofrep__unknown_top_level_field__400_invalid_context_any_context_key_accepted(api, tenant, environments):
    make.flag(tenant, "f", environment=environments["production"], is_enabled=True)
    headers = {"HTTP_X_ENVIRONMENT": "production"}

    refused = api.post("/ofrep/v1/evaluate/flags/f", {"context": {}, "contex": {"targetingKey": "u1"}}, format="json",
                       **headers)
    bulk = api.post("/ofrep/v1/evaluate/flags", {"flags": ["f"]}, format="json", **headers)
    ok = api.post("/ofrep/v1/evaluate/flags/f", {"context": {"targetingKey": "u1", "anyKey": [1, 2]}}, format="json",
                  **headers)

    assert refused.status_code == 400
    assert refused.json() == {"key": "f", "errorCode": "INVALID_CONTEXT", "errorDetails": "unknown field: contex"}
    assert bulk.status_code == 400 and bulk.json()["errorDetails"] == "unknown field: flags"
    assert ok.status_code == 200 and ok.json()["value"] is True


def test_unleash_import__misspelt_top_level_field__400_nothing_imported(api):
    from flags.models import Flag

    document = {"version": 2, "feature": [{"name": "f", "enabled": True, "strategies": [{"name": "default"}]}]}

    response = api.post("/api/v1/feature-flags/import/unleash?environment=production", document, format="json")

    _unknown(response, "feature")
    assert not Flag.objects.exists()


def test_unleash_import__unleash_own_fields__accepted(api):
    document = {
        "version": 2, "query": {"environment": "production"}, "meta": {"revisionId": 7, "etag": '"abc"', "queryHash": "x"},
        "segments": [],
        "features": [{"name": "f", "type": "release", "project": "default", "stale": False, "impressionData": False,
                      "enabled": True, "strategies": [{"name": "default", "parameters": {}}], "variants": []}],
    }

    response = api.post("/api/v1/feature-flags/import/unleash?environment=production", document, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["created"] == 1


# --- registry ------------------------------------------------------------------------------


def test_registry_bodies__unknown_field__400_and_nothing_registered(api, tenant):
    from registry.models import Instance

    _unknown(api.post("/api/v1/registry/register", {"service_name": "user-service", "service_url": "http://10.0.0.5:8080",
                                                    "heath_check_url": "http://10.0.0.5:8080/health"}, format="json"),
             "heath_check_url")
    assert not Instance.objects.exists()
    _unknown(api.put("/api/v1/registry/health", {"service_name": "user-service", "state": "healthy"}, format="json"),
             "state")
    _unknown(api.post("/heartbeat", {"service_id": 1, "staus": "healthy"}, format="json"), "staus")


# --- webhooks ------------------------------------------------------------------------------


def test_webhook__misspelt_key_prefix__400_and_no_subscription(api):
    from events.models import WebhookSubscription

    response = api.post("/api/v1/webhooks/", {"url": "http://127.0.0.1:9/hook", "key_prefx": "db."}, format="json")

    _unknown(response, "key_prefx")
    assert not WebhookSubscription.objects.exists()


def test_webhook__misspelt_field_in_the_filter_object__400_naming_its_path(api):
    from events.models import WebhookSubscription

    response = api.post("/api/v1/webhooks/", {"url": "http://127.0.0.1:9/hook", "filter": {"key_prefx": "db."}},
                        format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unknown_fields"
    assert error["message"] == "unknown field: filter.key_prefx"
    assert error["details"] == {"filter": {"key_prefx": ["Unknown field."]}}
    assert not WebhookSubscription.objects.exists()


def test_webhook__filter_object_as_the_answer_shows_it__accepted(api):
    response = api.post("/api/v1/webhooks/", {"url": "http://127.0.0.1:9/hook", "filter": {
        "resource_types": ["config"], "key_prefix": "db.", "environment": "production", "service_name": None}},
        format="json")

    assert response.status_code == 201, response.content
    assert response.json()["filter"] == {"resource_types": ["config"], "key_prefix": "db.", "environment": "production",
                                         "service_name": None}


def test_webhook__unknown_resource_type__400_naming_it(api):
    from events.models import WebhookSubscription

    response = api.post("/api/v1/webhooks/", {"url": "http://127.0.0.1:9/hook", "resource_types": ["config", "flags"]},
                        format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"resource_types": {"1": ['"flags" is not a valid choice.']}}
    assert not WebhookSubscription.objects.exists()


def test_webhook__unknown_environment__400_naming_it(api):
    response = api.post("/api/v1/webhooks/", {"url": "http://127.0.0.1:9/hook", "environment": "prod"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"environment": ["unknown environment 'prod'"]}


def test_webhook_patch__misspelt_field__400_and_filter_unchanged(api, tenant):
    sub = make.webhook(tenant, "http://127.0.0.1:9/hook", key_prefix="db.")

    _unknown(api.patch(f"/api/v1/webhooks/{sub.pk}", {"key_prefx": ""}, format="json"), "key_prefx")
    sub.refresh_from_db()
    assert sub.key_prefix == "db."


def test_webhook_service__unknown_resource_type__refused_for_the_admin_too(tenant):
    from core.errors import ValidationFailed
    from events.services import webhook_create

    with pytest.raises(ValidationFailed, match="unknown resource type 'flags'"):
        webhook_create(tenant=tenant, url="http://127.0.0.1:9/hook", resource_types=["flags"], actor="t")


@pytest.mark.parametrize(("value", "status"), [("true", 200), ("0", 200), ("maybe", 400)])
def test_config_read__explain_not_a_boolean__400_naming_it(api, tenant, value, status):
    make.config(tenant, "retry.max", 3)

    response = api.get(f"/api/v1/config/retry.max?explain={value}")

    assert response.status_code == status
    assert ("explain" in response.json()) is (value == "true")
    if status == 400:
        assert response.json()["error"]["message"] == "explain must be true or false"
