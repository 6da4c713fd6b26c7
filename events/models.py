"""The change-event outbox: one row per committed change, written in its transaction."""
from __future__ import annotations

from django.db import models
from django.db.models import Q


class Event(models.Model):
    """A record of a change. Never carries a secret's value (see events.services)."""

    tenant = models.ForeignKey("tenants.Tenant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    tenant_slug = models.CharField(max_length=64, blank=True, default="")
    resource_type = models.CharField(max_length=40)  # config, schema, flag, instance, webhook, tenant, ...
    action = models.CharField(max_length=20)  # created, updated, deleted, status_changed, ...
    key = models.CharField(max_length=200, blank=True, default="")
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
