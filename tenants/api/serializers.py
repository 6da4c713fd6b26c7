"""Validate and shape only: no domain rules here (they live in tenants.services)."""
from __future__ import annotations

from rest_framework import serializers

from core.api.strict import StrictSerializer

from ..models import ConfigEntry, ConfigSchema, Tenant, key_validator, service_validator, slug_validator


class AnyJSONField(serializers.JSONField):
    """Any JSON value, ``null`` included."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)


class ConfigCreateSerializer(StrictSerializer):
    key = serializers.CharField(max_length=200, validators=[key_validator])
    value = AnyJSONField()
    environment = serializers.SlugField(max_length=64, required=False, allow_null=True, allow_blank=True)
    service_name = serializers.CharField(max_length=100, required=False, allow_null=True, allow_blank=True,
                                         validators=[service_validator])
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    is_secret = serializers.BooleanField(required=False, default=False)
    is_encrypted = serializers.BooleanField(required=False)  # another name for is_secret, which existing clients send
    tenant = serializers.SlugField(required=False, allow_null=True, help_text="Omit for the request's tenant; null for global (platform keys).")


class ConfigUpdateSerializer(StrictSerializer):
    value = AnyJSONField(required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    is_secret = serializers.BooleanField(required=False)
    is_encrypted = serializers.BooleanField(required=False)
    version = serializers.IntegerField(required=False, min_value=0)


class TenantConfigPutSerializer(StrictSerializer):
    config_value = AnyJSONField()
    version = serializers.IntegerField(required=False, min_value=0)
    environment = serializers.SlugField(required=False, allow_null=True)
    service_name = serializers.CharField(required=False, allow_blank=True, max_length=100, validators=[service_validator])


class SchemaSerializer(StrictSerializer):
    key = serializers.CharField(max_length=200, validators=[key_validator])
    schema = serializers.JSONField()
    metadata = serializers.JSONField(required=False, default=dict)
    required = serializers.BooleanField(required=False, default=False)
    default_value = AnyJSONField(required=False, default=None)
    version = serializers.IntegerField(required=False, min_value=0)


class SchemaUpdateSerializer(SchemaSerializer):
    key = serializers.CharField(max_length=200, required=False, validators=[key_validator])


class TenantSerializer(StrictSerializer):
    slug = serializers.CharField(max_length=64, validators=[slug_validator])
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    is_active = serializers.BooleanField(required=False, default=True)


class TenantPatchSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False)
    is_active = serializers.BooleanField(required=False)


class EnvironmentSerializer(StrictSerializer):
    slug = serializers.CharField(max_length=64, validators=[slug_validator])
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


# --- output mappers -------------------------------------------------------------


def entry_out(entry: ConfigEntry, *, reveal: bool) -> dict:
    masked = entry.is_secret and not reveal
    out = {
        "id": entry.pk,
        "key": entry.key,
        "value": None if masked else entry.plain_value,
        "tenant": entry.tenant.slug if entry.tenant_id else None,
        "environment": entry.environment.slug if entry.environment_id else None,
        "service_name": entry.service_name or None,
        "description": entry.description,
        "is_secret": entry.is_secret,
        "is_encrypted": entry.is_secret,
        "version": entry.version,
        "source": entry.scope_label,
        "created_at": entry.created_at.isoformat() if entry.created_at else None,
        "updated_at": entry.updated_at.isoformat() if entry.updated_at else None,
    }
    if masked:
        out["masked"] = True
    return out


def schema_out(obj: ConfigSchema) -> dict:
    return {
        "key": obj.key,
        "schema": obj.schema,
        "metadata": obj.metadata,
        "required": obj.required,
        "default_value": obj.default_value,
        "version": obj.version,
        "updated_at": obj.updated_at.isoformat() if obj.updated_at else None,
    }


def tenant_out(t: Tenant) -> dict:
    return {"slug": t.slug, "name": t.name, "is_active": t.is_active}
