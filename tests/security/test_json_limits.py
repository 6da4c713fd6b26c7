"""One limit for stored JSON (core.jsonvalue): depth, size, valid Unicode, at input.

A value 500 deep used to be stored, then failed to pickle into Redis (every
bundle of the tenant answered 500); the same nesting in registry metadata broke
discovery; a secret holding a lone surrogate was stored, then every read of it
answered 500.
"""
from __future__ import annotations

import io
import json

import pytest

from core.jsonvalue import JSON_MAX_BYTES, JSON_MAX_DEPTH

pytestmark = pytest.mark.django_db


def nested(depth: int, leaf=1):
    """``depth`` levels of objects around ``leaf``: nested(2) == {"a": {"a": 1}}."""
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.fixture
def writer(tenant, environments, make_key, client_for):
    return client_for(make_key(tenant=tenant, scopes=["configs:read", "configs:write", "secrets:read"], name="writer"))


@pytest.fixture
def platform(make_key, client_for, default_tenant):
    return client_for(make_key(tenant=None, scopes=["admin"], name="platform"))


def test_config_write__value_100_deep__400_naming_the_limit_nothing_written(writer):
    from tenants.models import ConfigEntry

    r = writer.post("/api/v1/config/", {"key": "deep", "value": nested(100)}, format="json")

    assert r.status_code == 400
    assert r.json()["error"]["code"] == "json_too_deep"
    assert "limit of 40 levels" in r.json()["error"]["message"]  # the body: the value's limit + its envelope
    assert not ConfigEntry.objects.filter(key="deep").exists()


def test_config_write__value_just_over_the_limit__400_naming_the_limit(writer):
    r = writer.post("/api/v1/config/", {"key": "deep", "value": nested(JSON_MAX_DEPTH + 1)}, format="json")

    assert r.status_code == 400
    assert r.json()["error"] == {
        "code": "json_too_deep",
        "message": f"value of 'deep' is nested deeper than the limit of {JSON_MAX_DEPTH} levels (at $"
                   + ".a" * JSON_MAX_DEPTH + ")",
        "details": {"path": "$" + ".a" * JSON_MAX_DEPTH, "max_depth": JSON_MAX_DEPTH},
    }


def test_config_write__value_30_deep__stored_read_back_and_bundled(writer):
    value = nested(30)

    created = writer.post("/api/v1/config/", {"key": "deep", "value": value, "service_name": "billing"}, format="json")
    read = writer.get("/api/v1/config/deep?service_name=billing")
    bundles = [writer.get("/api/v1/config/service/billing?environment=production") for _ in range(2)]

    assert created.status_code == 201
    assert read.status_code == 200 and read.json()["value"] == value
    assert [b.status_code for b in bundles] == [200, 200]
    assert bundles[1].json() == bundles[0].json() and bundles[1].json()[0]["value"] == value


def test_config_write__value_over_size_limit__400_json_too_large(writer, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * JSON_MAX_BYTES

    r = writer.post("/api/v1/config/", {"key": "big", "value": ["x" * 1000] * 300}, format="json")

    assert r.status_code == 400
    assert r.json()["error"]["code"] == "json_too_large"
    assert r.json()["error"]["details"] == {"max_bytes": JSON_MAX_BYTES}


def test_secret_write__lone_surrogate__400_nothing_stored(writer):
    from tenants.models import ConfigEntry

    body = '{"key": "db.password", "value": "s3cret-\\ud800", "is_secret": true}'

    r = writer.post("/api/v1/config/", body, content_type="application/json")

    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_unicode"
    assert r.json()["error"]["message"] == "request body is not valid Unicode: $.value holds a lone surrogate"
    assert "s3cret" not in r.content.decode()
    assert not ConfigEntry.objects.filter(key="db.password").exists()


def test_config_write__lone_surrogate_in_a_key_of_the_value__400(writer):
    r = writer.post("/api/v1/config/", '{"key": "k", "value": {"\\udfff": 1}}', content_type="application/json")

    assert r.status_code == 400
    assert r.json()["error"]["message"] == "request body is not valid Unicode: a key at $.value.\\udfff holds a lone surrogate"


def test_secret_service__lone_surrogate__refused_before_storage(tenant):
    from core.errors import ValidationFailed
    from tenants.models import ConfigEntry
    from tenants.services.configs import config_create

    with pytest.raises(ValidationFailed) as exc:
        config_create(tenant=tenant, key="db.password", value="pw-\udc80", is_secret=True, actor="t")

    assert exc.value.code == "invalid_unicode"
    assert not ConfigEntry.objects.filter(key="db.password").exists()


def test_schema_register__deep_default_and_metadata__400_each(platform):
    from tenants.models import ConfigSchema

    default = platform.post("/api/v1/schemas/", {"key": "k", "schema": {"type": "object"}, "default_value": nested(33)},
                            format="json")
    metadata = platform.post("/api/v1/schemas/", {"key": "k", "schema": {"type": "object"}, "metadata": nested(33)},
                             format="json")
    schema = platform.post("/api/v1/schemas/", {"key": "k", "schema": nested(33, {})}, format="json")

    assert [r.status_code for r in (default, metadata, schema)] == [400, 400, 400]
    assert [r.json()["error"]["message"].split(" is nested")[0] for r in (default, metadata, schema)] == [
        "default_value", "metadata", "schema"]
    assert not ConfigSchema.objects.filter(key="k").exists()


def test_registry_register__metadata_deep__400_and_discovery_still_works(tenant, make_key, client_for):
    client = client_for(make_key(tenant=tenant, scopes=["registry:read", "registry:write"]))
    ok = client.post("/api/v1/registry/register", {"service_name": "pay", "service_url": "http://127.0.0.1:9401",
                                                   "metadata": {"version": "1.2"}}, format="json")

    deep_body = client.post("/api/v1/registry/register", {"service_name": "pay", "service_url": "http://127.0.0.1:9402",
                                                          "metadata": nested(100)}, format="json")
    deep_value = client.post("/api/v1/registry/register", {"service_name": "pay", "service_url": "http://127.0.0.1:9403",
                                                           "metadata": nested(JSON_MAX_DEPTH + 1)}, format="json")
    discovered = [client.get("/api/v1/registry/pay") for _ in range(2)]

    assert ok.status_code == 200
    assert [deep_body.status_code, deep_value.status_code] == [400, 400]
    assert deep_value.json()["error"]["code"] == "json_too_deep"
    assert [r.status_code for r in discovered] == [200, 200]
    assert {r.json()["service_url"] for r in discovered} == {"http://127.0.0.1:9401"}


def test_flag_write__deep_strategy_and_deep_json_payload__400_each(tenant, environments, make_key, client_for):
    from flags.models import Flag

    client = client_for(make_key(tenant=tenant, scopes=["flags:write"]))
    deep_strategy = client.post("/api/v1/feature-flags/", {
        "name": "deep", "environment": "production", "is_enabled": True,
        "strategies": [{"name": "default", "parameters": nested(JSON_MAX_DEPTH)}]}, format="json")
    deep_payload = client.post("/api/v1/feature-flags/", {
        "name": "deep", "kind": "json", "variants": [{"name": "v", "weight": 1000, "payload": {
            "type": "json", "value": json.dumps(nested(100))}}]}, format="json")

    assert [deep_strategy.status_code, deep_payload.status_code] == [400, 400]
    assert deep_strategy.json()["error"]["code"] == "json_too_deep"
    assert deep_payload.json()["error"]["message"].startswith("variant 'v' payload is nested deeper than the limit of 32")
    assert not Flag.objects.filter(name="deep").exists()


def test_flag_evaluate__context_deep__400(tenant, environments, make_key, client_for):
    client = client_for(make_key(tenant=tenant, scopes=["flags:read"]))

    r = client.post("/api/v1/feature-flags/evaluate", {"flag_name": "x", "environment": "production",
                                                       "context": {"properties": nested(100)}}, format="json")

    assert r.status_code == 400
    assert r.json()["error"]["code"] == "json_too_deep"


def test_import__config_value_too_deep__refused_naming_it_nothing_written(other_tenant, tmp_path):
    import yaml
    from django.core.management import CommandError, call_command

    from tenants.models import ConfigEntry

    doc = {"format": "config-hub", "version": 1, "configs": [{"key": "fine", "value": 1},
                                                               {"key": "deep", "value": nested(JSON_MAX_DEPTH + 1)}]}
    path = tmp_path / "deep.yaml"
    path.write_text(yaml.safe_dump(doc))

    with pytest.raises(CommandError) as exc:
        call_command("import_tenant", "globex", str(path), stdout=io.StringIO())

    assert "configs[1] (deep): value of 'deep' is nested deeper than the limit of 32 levels" in str(exc.value)
    assert ConfigEntry.objects.filter(tenant=other_tenant).count() == 0


def test_admin_edit__value_too_deep__form_error_nothing_written(tenant, admin_user, client):
    from tenants.models import ConfigEntry

    client.force_login(admin_user)

    r = client.post("/admin/tenants/configentry/add/", {
        "tenant": tenant.pk, "environment": "", "service_name": "", "key": "deep", "is_secret": "",
        "value": json.dumps(nested(JSON_MAX_DEPTH + 1)), "description": "",
    })

    assert r.status_code == 200
    assert r.context["adminform"].form.errors["value"] == [
        f"value is nested deeper than the limit of {JSON_MAX_DEPTH} levels (at $" + ".a" * JSON_MAX_DEPTH + ")"]
    assert not ConfigEntry.objects.filter(key="deep").exists()


def test_webhook_service__resource_types_too_deep__refused(tenant):
    # The API's serializer takes only strings there; the service holds the rule for every caller.
    from core.errors import ValidationFailed
    from events.models import WebhookSubscription
    from events.services import webhook_create

    with pytest.raises(ValidationFailed) as exc:
        webhook_create(tenant=tenant, url="http://127.0.0.1:9/hook", resource_types=[nested(JSON_MAX_DEPTH)], actor="t")

    assert exc.value.code == "json_too_deep"
    assert not WebhookSubscription.objects.exists()
