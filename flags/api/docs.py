"""OpenAPI documentation of the flag, evaluation and OFREP routes.

The views use ``docs.X`` for these and for the shared helpers re-exported here.
"""
from __future__ import annotations

from rest_framework import serializers

from core.api.docs import *  # noqa: F403  (the shared helpers: the views write docs.errors, docs.conditional, ...)


class FlagStateSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    strategies = AnyJSON()
    rollout_percentage = serializers.FloatField(allow_null=True)
    version = serializers.IntegerField()
    evaluation_count = serializers.IntegerField()
    last_evaluated_at = when()


class FlagOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    kind = serializers.CharField()
    tenant = serializers.CharField()
    environment = nullable_str(help_text="the environment is_enabled and rollout_percentage describe")
    is_enabled = serializers.BooleanField()
    rollout_percentage = serializers.FloatField(allow_null=True)
    variants = AnyJSON()
    dependencies = AnyJSON()
    version = serializers.IntegerField()
    environments = serializers.DictField(child=FlagStateSerializer(), help_text="every environment's state, by slug")
    updated_at = when()


class VariantSerializer(serializers.Serializer):
    name = serializers.CharField(help_text='"disabled" when no variant applies')
    enabled = serializers.BooleanField()
    feature_enabled = serializers.BooleanField(required=False)
    payload = AnyJSON(required=False, help_text='{"type", "value"}')


class EvaluationSerializer(serializers.Serializer):
    flag_name = serializers.CharField()
    enabled = serializers.BooleanField()
    variant = VariantSerializer()
    payload = AnyJSON(help_text="the variant's payload, or null")
    value = AnyJSON(help_text="the payload's value in its type, else enabled")
    reason = serializers.CharField()


class EvaluateAllOutSerializer(serializers.Serializer):
    environment = serializers.CharField()
    flags = serializers.DictField(child=EvaluationSerializer(), help_text="by flag name")


class UnleashImportSummarySerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    segments = serializers.IntegerField()


class OfrepRequestSerializer(serializers.Serializer):
    context = serializers.DictField(required=False, help_text="targetingKey, environment and any attributes")


class OfrepEvaluationSerializer(serializers.Serializer):
    key = serializers.CharField()
    value = AnyJSON()
    reason = enum_field("STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "DEFAULT")
    variant = nullable_str()
    metadata = serializers.DictField()


class OfrepEventStreamSerializer(serializers.Serializer):
    """OpenFeature ADR-0008: where the provider hears that it should fetch again."""

    type = serializers.ChoiceField(choices=["sse"])
    url = serializers.URLField(help_text="GET /ofrep/v1/stream?token=...: the token is a credential, do not log it")
    inactivityDelaySec = serializers.IntegerField(min_value=1)  # noqa: N815 - OFREP's name


class OfrepBulkSerializer(serializers.Serializer):
    flags = OfrepEvaluationSerializer(many=True)
    eventStreams = OfrepEventStreamSerializer(many=True, required=False,  # noqa: N815 - OFREP's name
                                              help_text="for API-key callers (OFREP_EVENT_STREAMS)")
