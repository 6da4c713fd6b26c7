"""OpenAPI documentation of the events and webhooks routes.

The views use ``docs.X`` for these and for the shared helpers re-exported here.
"""
from __future__ import annotations

from rest_framework import serializers

from core.api.docs import *  # noqa: F403  (the shared helpers: the views write docs.errors, docs.conditional, ...)


class EventDataSerializer(serializers.Serializer):
    tenant = nullable_str()
    resource_type = serializers.CharField()
    action = serializers.CharField()
    key = serializers.CharField(allow_blank=True)
    environment = nullable_str()
    service_name = nullable_str()
    version = serializers.IntegerField(allow_null=True)
    actor = serializers.CharField(allow_blank=True)
    details = AnyJSON()


class EventOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    type = serializers.CharField(help_text="<resource_type>.<action>")
    timestamp = when()
    data = EventDataSerializer()


class EventPageSerializer(serializers.Serializer):
    events = EventOutSerializer(many=True)
    cursor = serializers.IntegerField(help_text="pass as ?after= for the next page")


class WebhookFilterSerializer(serializers.Serializer):
    resource_types = serializers.ListField(child=serializers.CharField())
    key_prefix = nullable_str()
    environment = nullable_str()
    service_name = nullable_str()


class WebhookOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    filter = WebhookFilterSerializer()
    is_active = serializers.BooleanField()
    state = enum_field("active", "failing", "disabled")
    failing_since = when()
    disabled_at = when()
    created_at = when()
    secret = serializers.CharField(required=False, help_text="the signing secret, on creation only")


class DeliveryAttemptSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    response_code = serializers.IntegerField(allow_null=True)
    error = nullable_str()
    duration_ms = serializers.FloatField()


class DeliveryOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    event_id = serializers.IntegerField()
    status = serializers.CharField(help_text="pending, sending, retrying, succeeded, failed, or blocked (refused by the outbound policy: nothing was sent)")
    attempts = serializers.IntegerField()
    response_code = serializers.IntegerField(allow_null=True)
    last_error = nullable_str()
    next_attempt_at = when()
    delivered_at = when()
    attempt_log = DeliveryAttemptSerializer(many=True)
