"""OpenAPI documentation of the answers (drf-spectacular): the bodies the views return.

These serializers only describe; no view validates or shapes with them (the
views build plain dicts, see ``tenants.api.serializers.entry_out`` and friends).
Keep each one next to the shape it documents in step: tests/security/test_fuzz.py
checks every answer of every operation against the published schema.

``ANY`` fields hold any JSON value (``null`` included); ``required=False`` marks a
key that is only present sometimes (``masked`` on a hidden secret, ``secret`` on
a new webhook).
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers


class AnyJSON(serializers.JSONField):
    """Any JSON value: object, array, string, number, boolean or null."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)


def _nullable_str(**kw):
    return serializers.CharField(allow_null=True, **kw)


def _when():
    return serializers.DateTimeField(allow_null=True)


def _enum(*values: str, **kw) -> serializers.CharField:
    """A string from a fixed set. (``status`` fields stay plain strings: another
    ``status`` enum would rename the request serializers' shared ``StatusEnum``.)"""

    @extend_schema_field({"type": "string", "enum": list(values)})
    class EnumField(serializers.CharField):
        pass

    return EnumField(**kw)


# --- errors ------------------------------------------------------------------------


class ApiErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="machine-readable: validation_failed, not_found, stale_version, ...")
    message = serializers.CharField()
    details = AnyJSON(help_text="per-field messages for a 400, else usually null")


class ApiErrorSerializer(serializers.Serializer):
    """API.md's error body."""

    error = ApiErrorDetailSerializer()


class OfrepErrorSerializer(serializers.Serializer):
    """OFREP's error body (evaluation failures of the OFREP routes)."""

    key = serializers.CharField(required=False, help_text="the flag, on single evaluations")
    errorCode = _enum("PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL", "FLAG_NOT_FOUND", "TYPE_MISMATCH")  # noqa: N815 - OFREP's name
    errorDetails = serializers.CharField(required=False)  # noqa: N815


_ERROR_TEXT = {
    400: "Bad input (JSON path of each violation in details)",
    401: "No valid credential",
    403: "The credential lacks the scope (or tenant binding) this route needs",
    404: "Not found (or a tenant the caller is not bound to)",
    409: "Conflict with an existing resource",
    412: "Stale version (If-Match or body version)",
    413: "Request body too large",
    415: "Unsupported media type (send application/json)",
    429: "Throttled (see Retry-After)",
    503: "A dependency (database, cache) is unavailable (see Retry-After)",
}


def error(status: int, description: str | None = None) -> OpenApiResponse:
    return OpenApiResponse(ApiErrorSerializer, description=description or _ERROR_TEXT.get(status, "Error"))


def errors(*statuses: int) -> dict:
    """``{status: the common error body}`` for ``responses={...}``."""
    return {status: error(status) for status in statuses}


NOT_MODIFIED = OpenApiResponse(None, description="Not modified: the If-None-Match ETag is current")
NO_CONTENT = OpenApiResponse(None, description="Done, no body")


def conditional(ok) -> dict:
    """A GET answered with an ETag: 200 with ``ok``, or 304 for If-None-Match."""
    return {200: ok, 304: NOT_MODIFIED}


OFREP_OR_API_ERROR = PolymorphicProxySerializer(
    component_name="OfrepOrApiError",
    serializers=[OfrepErrorSerializer, ApiErrorSerializer],
    resource_type_field_name=None,
)


def ofrep_error(status: int, description: str) -> OpenApiResponse:
    return OpenApiResponse(OFREP_OR_API_ERROR, description=description)


# --- configs -----------------------------------------------------------------------


class ConfigExplainStepSerializer(serializers.Serializer):
    source = serializers.CharField()
    id = serializers.IntegerField(required=False)
    version = serializers.IntegerField(allow_null=True)
    environment = _nullable_str(required=False)
    service_name = _nullable_str(required=False)
    value = AnyJSON()
    masked = serializers.BooleanField(required=False)


class ConfigValueSerializer(serializers.Serializer):
    """A resolved config value (``GET /api/v1/config/{key}``)."""

    key = serializers.CharField()
    value = AnyJSON(help_text="null (and masked) for a secret without secrets:read")
    environment = _nullable_str()
    service_name = _nullable_str()
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
    tenant = _nullable_str(help_text="null for a global entry")
    environment = _nullable_str()
    service_name = _nullable_str()
    description = serializers.CharField(allow_blank=True)
    is_secret = serializers.BooleanField()
    is_encrypted = serializers.BooleanField()
    version = serializers.IntegerField()
    source = serializers.CharField()
    created_at = _when()
    updated_at = _when()
    masked = serializers.BooleanField(required=False)


class ConfigEntryPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = _nullable_str()
    previous = _nullable_str()
    results = ConfigEntrySerializer(many=True)


class BundleRowSerializer(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True, help_text="null for a schema default")
    key = serializers.CharField()
    value = AnyJSON()
    environment = _nullable_str()
    service_name = _nullable_str()
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
    updated_at = _when()


class TenantOutSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField(allow_blank=True)
    is_active = serializers.BooleanField()


class EnvironmentOutSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField(allow_blank=True)


class RevertSerializer(serializers.Serializer):
    history_id = serializers.IntegerField(help_text="a row of GET /api/v1/history/?resource=config")


# --- flags ---------------------------------------------------------------------------


class FlagStateSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    strategies = AnyJSON()
    rollout_percentage = serializers.FloatField(allow_null=True)
    version = serializers.IntegerField()
    evaluation_count = serializers.IntegerField()
    last_evaluated_at = _when()


class FlagOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    kind = serializers.CharField()
    tenant = serializers.CharField()
    environment = _nullable_str(help_text="the environment is_enabled and rollout_percentage describe")
    is_enabled = serializers.BooleanField()
    rollout_percentage = serializers.FloatField(allow_null=True)
    variants = AnyJSON()
    dependencies = AnyJSON()
    version = serializers.IntegerField()
    environments = serializers.DictField(child=FlagStateSerializer(), help_text="every environment's state, by slug")
    updated_at = _when()


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
    reason = _enum("STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "DEFAULT")
    variant = _nullable_str()
    metadata = serializers.DictField()


class OfrepBulkSerializer(serializers.Serializer):
    flags = OfrepEvaluationSerializer(many=True)


# --- registry ----------------------------------------------------------------------------

class InstanceOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    service_name = serializers.CharField()
    service_url = serializers.CharField()
    url = serializers.CharField()
    health_check_url = _nullable_str()
    status = serializers.CharField(help_text="healthy, unhealthy, out_of_service or starting")
    metadata = AnyJSON()
    last_heartbeat = _when()
    response_time = serializers.FloatField(allow_null=True, help_text="milliseconds")
    registered_at = _when()


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


# --- events, webhooks, history -----------------------------------------------------------


class EventDataSerializer(serializers.Serializer):
    tenant = _nullable_str()
    resource_type = serializers.CharField()
    action = serializers.CharField()
    key = serializers.CharField(allow_blank=True)
    environment = _nullable_str()
    service_name = _nullable_str()
    version = serializers.IntegerField(allow_null=True)
    actor = serializers.CharField(allow_blank=True)
    details = AnyJSON()


class EventOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    type = serializers.CharField(help_text="<resource_type>.<action>")
    timestamp = _when()
    data = EventDataSerializer()


class EventPageSerializer(serializers.Serializer):
    events = EventOutSerializer(many=True)
    cursor = serializers.IntegerField(help_text="pass as ?after= for the next page")


class WebhookFilterSerializer(serializers.Serializer):
    resource_types = serializers.ListField(child=serializers.CharField())
    key_prefix = _nullable_str()
    environment = _nullable_str()
    service_name = _nullable_str()


class WebhookOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    filter = WebhookFilterSerializer()
    is_active = serializers.BooleanField()
    state = _enum("active", "failing", "disabled")
    failing_since = _when()
    disabled_at = _when()
    created_at = _when()
    secret = serializers.CharField(required=False, help_text="the signing secret, on creation only")


class DeliveryAttemptSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    response_code = serializers.IntegerField(allow_null=True)
    error = _nullable_str()
    duration_ms = serializers.FloatField()


class DeliveryOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    event_id = serializers.IntegerField()
    status = serializers.CharField(help_text="pending, sending, retrying, succeeded, failed, or blocked (refused by the outbound policy: nothing was sent)")
    attempts = serializers.IntegerField()
    response_code = serializers.IntegerField(allow_null=True)
    last_error = _nullable_str()
    next_attempt_at = _when()
    delivered_at = _when()
    attempt_log = DeliveryAttemptSerializer(many=True)


class HistoryRowSerializer(serializers.Serializer):
    history_id = serializers.IntegerField()
    resource = serializers.CharField()
    id = serializers.IntegerField()
    type = _enum("created", "updated", "deleted")
    date = serializers.DateTimeField()
    actor = _nullable_str(allow_blank=True)
    user = _nullable_str()
    reason = _nullable_str()
    changes = serializers.ListField(child=serializers.DictField(), help_text='{"field", "old", "new"} or {"field", "changed": true} for secrets')
    key = serializers.CharField(required=False)
    name = serializers.CharField(required=False, allow_blank=True)
    slug = serializers.CharField(required=False)
    version = serializers.IntegerField(required=False, allow_null=True)
    value = AnyJSON(required=False, help_text="config rows: the value (null for secrets)")
    is_secret = serializers.BooleanField(required=False)


class HistoryPageSerializer(serializers.Serializer):
    results = HistoryRowSerializer(many=True)
