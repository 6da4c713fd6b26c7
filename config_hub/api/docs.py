"""OpenAPI documentation of the history route, which reads every app's history.

The views use ``docs.X`` for these and for the shared helpers re-exported here.
"""
from __future__ import annotations

from rest_framework import serializers

from core.api.docs import *  # noqa: F403  (the shared helpers: the views write docs.errors, docs.conditional, ...)


class HistoryRowSerializer(serializers.Serializer):
    history_id = serializers.IntegerField()
    resource = serializers.CharField()
    id = serializers.IntegerField()
    type = enum_field("created", "updated", "deleted")
    date = serializers.DateTimeField()
    actor = nullable_str(allow_blank=True)
    user = nullable_str()
    reason = nullable_str()
    changes = serializers.ListField(child=serializers.DictField(), help_text='{"field", "old", "new"} or {"field", "changed": true} for secrets')
    key = serializers.CharField(required=False)
    name = serializers.CharField(required=False, allow_blank=True)
    slug = serializers.CharField(required=False)
    version = serializers.IntegerField(required=False, allow_null=True)
    value = AnyJSON(required=False, help_text="config rows: the value (null for secrets)")
    is_secret = serializers.BooleanField(required=False)


class HistoryPageSerializer(serializers.Serializer):
    results = HistoryRowSerializer(many=True)
