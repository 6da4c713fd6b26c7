"""The change-event outbox: one row per committed change, written in its transaction."""
from __future__ import annotations

from django.db import models
from django.db.models import Q

from core.audit import audit_history
from core.fields import EncryptedJSONField
from core.validators import MAX_URL_LENGTH, validate_service_url

# Tenant-less events that concern every tenant: a global config entry, a schema or
# an environment changes what every tenant resolves. Other tenant-less events
# (a platform API key, a deleted tenant, whose row is gone) are for platform
# callers only; neither are events of a deleted tenant (tenant NULL, slug kept).
GLOBAL_RESOURCE_TYPES = ("config", "schema", "environment")
# Every resource type an event can have (``event_record``'s callers): what a
# webhook subscription may filter on.
RESOURCE_TYPES = ("config", "schema", "environment", "tenant", "flag", "segment", "instance", "webhook", "api_key",
                  "service_token_secret", "release",
                  "change_request")


def global_events_q() -> Q:
    """The events every tenant sees (watch) and receives (webhooks)."""
    return Q(tenant__isnull=True, tenant_slug="", resource_type__in=GLOBAL_RESOURCE_TYPES)


class Event(models.Model):
    """A record of a change. Never carries a secret's value (see events.services)."""

    tenant = models.ForeignKey("tenants.Tenant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    tenant_slug = models.CharField(max_length=64, blank=True, default="")
    resource_type = models.CharField(max_length=40)  # config, schema, flag, instance, webhook, tenant, ...
    action = models.CharField(max_length=20)  # created, updated, deleted, status_changed, ...
    # A config key, a flag name, or a webhook's URL (up to MAX_URL_LENGTH).
    key = models.CharField(max_length=MAX_URL_LENGTH, blank=True, default="")
    environment = models.CharField(max_length=64, blank=True, default="")
    service_name = models.CharField(max_length=100, blank=True, default="")
    version = models.PositiveIntegerField(null=True, blank=True)
    actor = models.CharField(max_length=150, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["tenant", "id"], name="event_tenant_cursor_idx"),
            # The outbox sweep looks only at rows not yet dispatched.
            models.Index(fields=["id"], condition=Q(dispatched_at__isnull=True), name="event_undispatched_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.resource_type} {self.action} {self.key}"

    @property
    def is_global(self) -> bool:
        """Whether every tenant's subscriptions and watchers get this event (see :func:`global_events_q`)."""
        return self.tenant_id is None and not self.tenant_slug and self.resource_type in GLOBAL_RESOURCE_TYPES


def event_matches(event: Event, *, resource_types, key_prefix: str, environment: str, service_name: str) -> bool:
    """Whether an event passes a filter (a webhook subscription's, a stream's); empty: anything."""
    if resource_types and event.resource_type not in resource_types:
        return False
    if key_prefix and not event.key.startswith(key_prefix):
        return False
    if environment and event.environment != environment:
        return False
    if service_name and event.service_name != service_name:
        return False
    return True


class WebhookSubscription(models.Model):
    """A receiver of a tenant's events, with a filter and a Standard Webhooks secret."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="webhooks")
    url = models.CharField(max_length=MAX_URL_LENGTH, validators=[validate_service_url])
    description = models.CharField(max_length=200, blank=True, default="")
    # Filter: empty means "everything".
    resource_types = models.JSONField(default=list, blank=True)
    key_prefix = models.CharField(max_length=200, blank=True, default="")
    environment = models.CharField(max_length=64, blank=True, default="")
    service_name = models.CharField(max_length=100, blank=True, default="")
    secret = EncryptedJSONField(editable=False)
    is_active = models.BooleanField(default=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = audit_history(excluded_fields=["secret"])

    class Meta:
        ordering = ["tenant_id", "id"]

    def __str__(self) -> str:
        return f"{self.url} [{self.filter_label}]"

    @property
    def filter_label(self) -> str:
        """The filter in words: two subscriptions to one URL differ by it."""
        parts = [", ".join(self.resource_types) if self.resource_types else "all events"]
        if self.key_prefix:
            parts.append(f"keys {self.key_prefix}*")
        if self.environment:
            parts.append(f"env {self.environment}")
        if self.service_name:
            parts.append(f"service {self.service_name}")
        return " · ".join(parts)

    def matches(self, event: Event) -> bool:
        """Whether an event passes this subscription's filter."""
        return event_matches(event, resource_types=self.resource_types, key_prefix=self.key_prefix,
                             environment=self.environment, service_name=self.service_name)


class WebhookDelivery(models.Model):
    """One event for one subscription; retried until it succeeds or the subscription is disabled."""

    PENDING, SENDING, RETRYING, SUCCEEDED, FAILED = "pending", "sending", "retrying", "succeeded", "failed"
    # Refused by the outbound policy (core.outbound): nothing was sent.
    BLOCKED = "blocked"
    STATUSES = [(s, s) for s in (PENDING, SENDING, RETRYING, SUCCEEDED, FAILED, BLOCKED)]

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=STATUSES, default=PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # For pending/retrying: when it is due; for sending: when the claim expires.
    next_attempt_at = models.DateTimeField(db_index=True)
    last_response_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [models.UniqueConstraint(fields=["event", "subscription"], name="delivery_once_per_subscriber")]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(status__in=["pending", "sending", "retrying"]), name="delivery_due_idx"),
        ]

    def __str__(self) -> str:
        return f"delivery #{self.pk} of event #{self.event_id} ({self.status})"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    at = models.DateTimeField(auto_now_add=True)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True, default="")
    duration_ms = models.FloatField(default=0)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        answer = f"HTTP {self.response_code}" if self.response_code else (self.error or "no answer")
        return f"attempt at {self.at:%Y-%m-%d %H:%M:%S}: {answer} in {self.duration_ms:.0f} ms"
