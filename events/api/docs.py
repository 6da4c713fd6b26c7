"""OpenAPI documentation of the events and webhooks routes.

The views use ``docs.X`` for these and for the shared helpers re-exported here.
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from core.api.docs import *  # noqa: F403  (the shared helpers: the views write docs.errors, docs.conditional, ...)
from core.api.docs import error


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


# --- the streams (server-sent events) -------------------------------------------------

LAST_EVENT_ID = OpenApiParameter(
    "Last-Event-ID", int, OpenApiParameter.HEADER, required=False,
    description="Resume after this event id (what an EventSource sends when it reconnects); wins over ?after=")

STREAM_EXAMPLE = (": connected\nid: 41\n\n"
                  'id: 42\nevent: config.updated\ndata: {"data":{"action":"updated","key":"db.url",...},'
                  '"id":42,"timestamp":"2026-01-01T00:00:00+00:00","type":"config.updated"}\n\n'
                  ": keepalive\n\n")


class ServerSentEventSerializer(serializers.Serializer):
    """One event of a ``text/event-stream`` answer, as an SSE client parses it."""

    id = serializers.CharField(required=False, help_text="the outbox event id (the client's Last-Event-ID)")
    event = serializers.CharField(required=False, help_text="the event's type")
    data = serializers.CharField(required=False, help_text="JSON on one line")


def event_stream(description: str, example: str) -> dict:
    """The ``text/event-stream`` answer of a stream route (the schema is one event's,
    as OpenAPI 3.2's itemSchema), and its 503 past the listener cap."""
    return {
        (200, "text/event-stream"): OpenApiResponse(
            ServerSentEventSerializer, description=description,
            examples=[OpenApiExample("events", value=example, media_type="text/event-stream")]),
        503: error(503, "stream_capacity: the process holds EVENTS_STREAM_MAX_PER_PROCESS listeners "
                        "(Retry-After: 5); or the database is unavailable"),
    }
