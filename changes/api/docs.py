"""OpenAPI documentation of the change request and policy routes."""
from __future__ import annotations

from rest_framework import serializers

from core.api.docs import *  # noqa: F403  (the shared helpers: the views write docs.errors, ...)
from core.api.docs import AnyJSON, enum_field, nullable_str, when

STATUSES = ("draft", "open", "approved", "scheduled", "applied", "declined", "cancelled", "conflicted")


class ReviewOutSerializer(serializers.Serializer):
    actor = serializers.CharField()
    decision = enum_field("approve", "decline")
    revision = serializers.IntegerField()
    comment = serializers.CharField(allow_blank=True)
    created_at = when()


class PolicyOutSerializer(serializers.Serializer):
    approvals_required = serializers.IntegerField()
    author_may_approve = serializers.BooleanField()


class EnvironmentPolicyOutSerializer(PolicyOutSerializer):
    environment = serializers.CharField()
    protected = serializers.BooleanField()
    global_default = PolicyOutSerializer()


class ChangeRequestOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    tenant = serializers.CharField()
    environment = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    # A plain string: another ``status`` enum would rename the shared ``StatusEnum`` (core.api.docs.enum_field).
    status = serializers.CharField(help_text=f"one of {', '.join(STATUSES)}")
    author = serializers.CharField()
    revision = serializers.IntegerField()
    apply_at = when()
    applied_at = when()
    applied_by = nullable_str()
    created_at = when()
    updated_at = when()
    changes = serializers.ListField(child=serializers.DictField(child=AnyJSON()),
                                    help_text="API.md's changes and schema.set / schema.delete (docs/change-requests.md); "
                                              "a secret's value null and masked without secrets:read")
    approvals = serializers.ListField(child=serializers.CharField(), help_text="who approved the current revision")
    declined_by = serializers.ListField(child=serializers.CharField())
    reviews = ReviewOutSerializer(many=True)
    policy = PolicyOutSerializer()
    conflicts = serializers.ListField(child=serializers.DictField(child=AnyJSON()))
    diff = serializers.ListField(child=serializers.DictField(child=AnyJSON()), required=False,
                                 help_text="per change: old and new value (secrets masked)")
    affected_services = serializers.ListField(child=serializers.DictField(child=AnyJSON()), required=False,
                                              help_text="per service, the resolved values that change")
