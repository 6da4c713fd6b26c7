"""OpenAPI documentation of the registry routes.

The views use ``docs.X`` for these and for the shared helpers re-exported here.
"""
from __future__ import annotations

from rest_framework import serializers

from core.api.docs import *  # noqa: F403  (the shared helpers: the views write docs.errors, docs.conditional, ...)


class InstanceOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    service_name = serializers.CharField()
    service_url = serializers.CharField()
    url = serializers.CharField()
    health_check_url = nullable_str()
    status = serializers.CharField(help_text="healthy, unhealthy, out_of_service or starting")
    metadata = AnyJSON()
    last_heartbeat = when()
    response_time = serializers.FloatField(allow_null=True, help_text="milliseconds")
    registered_at = when()


class HealthBeatOutSerializer(serializers.Serializer):
    service_name = serializers.CharField()
    status = serializers.CharField()
    instances = serializers.ListField(child=serializers.IntegerField())


class HealthyListSerializer(serializers.Serializer):
    services = InstanceOutSerializer(many=True)


class ServiceUrlSerializer(serializers.Serializer):
    url = serializers.CharField()
    id = serializers.IntegerField()
    service_name = serializers.CharField()


class HeartbeatOutSerializer(serializers.Serializer):
    service_id = serializers.IntegerField()
    status = serializers.CharField(help_text='"ok"')
