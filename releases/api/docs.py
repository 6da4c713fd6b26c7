"""OpenAPI documentation of the release routes."""
from __future__ import annotations

from rest_framework import serializers

from core.api.docs import *  # noqa: F403  (the shared helpers: the views write docs.errors, docs.conditional, ...)
from core.api.docs import AnyJSON, nullable_str, when


class ReleaseOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    environment = serializers.CharField()
    digest = serializers.CharField(help_text="SHA-256 of the content: equal for equal contents")
    created_at = when()


class ReleasePageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = nullable_str()
    previous = nullable_str()
    results = ReleaseOutSerializer(many=True)


class ReleaseValueSerializer(serializers.Serializer):
    key = serializers.CharField()
    value = AnyJSON(help_text="null (and masked) for a secret without secrets:read")
    source = serializers.CharField(help_text="the scope that won when the release was made")
    is_secret = serializers.BooleanField()
    masked = serializers.BooleanField(required=False)


class ReleaseDetailSerializer(ReleaseOutSerializer):
    created_by = serializers.CharField()
    service = nullable_str(help_text="the service the values are resolved for (?service=); null: the tenant")
    services = serializers.ListField(child=serializers.CharField(), help_text="services known when it was made")
    pins = serializers.ListField(child=serializers.CharField(), help_text="services pinned to it now")
    configs = ReleaseValueSerializer(many=True)
    flags = serializers.DictField(child=AnyJSON())
    schemas = serializers.DictField(child=AnyJSON())


class SideSerializer(serializers.Serializer):
    value = AnyJSON()
    source = nullable_str()
    masked = serializers.BooleanField(required=False)


class DifferenceSerializer(serializers.Serializer):
    """``{"key", "from", "to"}`` ("from" is a Python keyword: added in ``get_fields``)."""

    key = serializers.CharField()

    def get_fields(self):
        return {"key": super().get_fields()["key"], "from": SideSerializer(), "to": SideSerializer()}


class FlagDifferenceSerializer(serializers.Serializer):
    """``{"name", "from", "to"}``: a flag's state in each release (null: absent)."""

    name = serializers.CharField()

    def get_fields(self):
        return {"name": super().get_fields()["name"], "from": AnyJSON(allow_null=True), "to": AnyJSON(allow_null=True)}


class CompareSerializer(serializers.Serializer):
    differences = DifferenceSerializer(many=True)
    flags = FlagDifferenceSerializer(many=True)


class PinSerializer(serializers.Serializer):
    release = serializers.IntegerField()
    environment = serializers.CharField()
    service_name = serializers.CharField()
