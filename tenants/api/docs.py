"""OpenAPI documentation of the config, schema, tenant and environment routes.

The views use ``docs.X`` for these and for the shared helpers re-exported here.
"""
from __future__ import annotations

from rest_framework import serializers

from core.api.docs import *  # noqa: F403  (the shared helpers: the views write docs.errors, docs.conditional, ...)


class ConfigExplainStepSerializer(serializers.Serializer):
    source = serializers.CharField()
    id = serializers.IntegerField(required=False)
    version = serializers.IntegerField(allow_null=True)
    environment = nullable_str(required=False)
    service_name = nullable_str(required=False)
    value = AnyJSON()
    masked = serializers.BooleanField(required=False)


class ConfigValueSerializer(serializers.Serializer):
    """A resolved config value (``GET /api/v1/config/{key}``)."""

    key = serializers.CharField()
    value = AnyJSON(help_text="null (and masked) for a secret without secrets:read")
    environment = nullable_str()
    service_name = nullable_str()
    version = serializers.IntegerField(allow_null=True)
    source = serializers.CharField(help_text="the scope that won")
    is_secret = serializers.BooleanField()
    is_encrypted = serializers.BooleanField()
    id = serializers.IntegerField(allow_null=True, help_text="the entry; null for a schema default")
    masked = serializers.BooleanField(required=False)
    explain = ConfigExplainStepSerializer(many=True, required=False, help_text="with ?explain=true")


class ConfigEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    key = serializers.CharField()
    value = AnyJSON()
    tenant = nullable_str(help_text="null for a global entry")
    environment = nullable_str()
    service_name = nullable_str()
    description = serializers.CharField(allow_blank=True)
    is_secret = serializers.BooleanField()
    is_encrypted = serializers.BooleanField()
    version = serializers.IntegerField()
    source = serializers.CharField()
    created_at = when()
    updated_at = when()
    masked = serializers.BooleanField(required=False)


class ConfigEntryPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = nullable_str()
    previous = nullable_str()
    results = ConfigEntrySerializer(many=True)


class BundleRowSerializer(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True, help_text="null for a schema default")
    key = serializers.CharField()
    value = AnyJSON()
    environment = nullable_str()
    service_name = nullable_str()
    version = serializers.IntegerField(allow_null=True)
    source = serializers.CharField()
    is_secret = serializers.BooleanField()
    is_encrypted = serializers.BooleanField()
    masked = serializers.BooleanField(required=False)


class TenantConfigSerializer(serializers.Serializer):
    """A tenant's config read (``GET /config/tenants/{tenant_id}/configs/{config_key}``)."""

    config_key = serializers.CharField()
    config_value = AnyJSON()
    version = serializers.IntegerField(allow_null=True)
    source = serializers.CharField()
    masked = serializers.BooleanField(required=False)


class TenantConfigWrittenSerializer(serializers.Serializer):
    """A tenant's config write (``PUT /config/tenants/{tenant_id}/configs/{config_key}``)."""

    config_key = serializers.CharField()
    config_value = AnyJSON()
    version = serializers.IntegerField()
    source = serializers.CharField()
    id = serializers.IntegerField()


class AllTenantsRowSerializer(serializers.Serializer):
    tenant_id = serializers.CharField(help_text="the tenant's slug")
    config_value = AnyJSON()
    source = serializers.CharField()
    version = serializers.IntegerField(allow_null=True)
    masked = serializers.BooleanField(required=False)


class ConfigSchemaOutSerializer(serializers.Serializer):
    key = serializers.CharField()
    schema = AnyJSON(help_text="a JSON Schema (draft 2020-12)")
    metadata = AnyJSON()
    required = serializers.BooleanField()
    default_value = AnyJSON()
    version = serializers.IntegerField()
    updated_at = when()


class TenantOutSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField(allow_blank=True)
    is_active = serializers.BooleanField()


class EnvironmentOutSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField(allow_blank=True)


class CompareSideSerializer(serializers.Serializer):
    value = AnyJSON(help_text="null for a secret without secrets:read (then masked is true) or a key that does not resolve")
    source = nullable_str(help_text="the scope that won; null: the key does not resolve in this environment")
    is_secret = serializers.BooleanField()
    masked = serializers.BooleanField(required=False)


class CompareDifferenceSerializer(serializers.Serializer):
    key = serializers.CharField()
    # "from" is a Python keyword: declared through the fields mapping below.


CompareDifferenceSerializer._declared_fields.update({"from": CompareSideSerializer(), "to": CompareSideSerializer()})


class CompareOutSerializer(serializers.Serializer):
    """``GET /api/v1/environments/compare``."""

    differences = CompareDifferenceSerializer(many=True)


class RevertSerializer(serializers.Serializer):
    history_id = serializers.IntegerField(help_text="a row of GET /api/v1/history/?resource=config")
