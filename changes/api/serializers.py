"""Change request and policy bodies: validate and shape only."""
from __future__ import annotations

from rest_framework import serializers

from core.api.strict import StrictSerializer


class ChangeRequestCreateSerializer(StrictSerializer):
    environment = serializers.SlugField()
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
    apply_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    changes = serializers.ListField(child=serializers.JSONField(), allow_empty=False, max_length=200)
    draft = serializers.BooleanField(required=False, default=False)


class ChangeRequestUpdateSerializer(StrictSerializer):
    title = serializers.CharField(required=False, max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    apply_at = serializers.DateTimeField(required=False, allow_null=True)
    changes = serializers.ListField(child=serializers.JSONField(), required=False, allow_empty=False, max_length=200)
    status = serializers.RegexField(r"^open$", required=False, help_text="`open`: submit a draft for review.",
                                    error_messages={"invalid": 'only "open" (submit a draft for review)'})


class ReviewSerializer(StrictSerializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class EmptySerializer(StrictSerializer):
    pass


class PolicySerializer(StrictSerializer):
    approvals_required = serializers.IntegerField(min_value=0, max_value=10)
    author_may_approve = serializers.BooleanField()
