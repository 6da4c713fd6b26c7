"""Feature flags of a tenant, their state per environment, and reusable segments.

A flag's per-environment row holds Unleash-shaped strategies (constraints,
segments, parameters, strategy variants), so the state of a tenant and an
environment *is* an Unleash ``/client/features`` document: the engine in
``flags/engine`` evaluates it unchanged, and Unleash exports import as they are.
"""
from __future__ import annotations

from django.db import models

from config_hub.audit import audit_history


class Segment(models.Model):
    """A reusable set of constraints (Unleash segment) of one tenant."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="segments")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    constraints = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = audit_history()

    class Meta:
        ordering = ["tenant_id", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="segment_unique_name")]

    def __str__(self) -> str:
        return self.name


class Flag(models.Model):
    KIND_CHOICES = [("boolean", "boolean"), ("string", "string"), ("number", "number"), ("json", "json")]

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="flags")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    kind = models.CharField(max_length=10, choices=KIND_CHOICES, default="boolean")
    # Unleash feature variants (weights, stickiness, overrides, payloads).
    variants = models.JSONField(default=list, blank=True)
    # Unleash dependencies on other flags of the tenant: [{"feature", "enabled", "variants"}].
    dependencies = models.JSONField(default=list, blank=True)
    # The environment seed 001's shorthand (is_enabled, rollout_percentage) addresses
    # when a request names none: the one the flag was created in.
    default_environment = models.ForeignKey(
        "tenants.Environment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = audit_history()

    class Meta:
        ordering = ["tenant_id", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="flag_unique_name")]

    def __str__(self) -> str:
        return self.name


class FlagEnvironment(models.Model):
    """A flag's toggle and strategies in one environment."""

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="states")
    environment = models.ForeignKey("tenants.Environment", on_delete=models.CASCADE, related_name="+")
    enabled = models.BooleanField(default=False)
    strategies = models.JSONField(default=list, blank=True)
    version = models.PositiveIntegerField(default=1)
    # Usage, flushed from Redis counters by a beat task (no write per evaluation).
    evaluation_count = models.PositiveBigIntegerField(default=0)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = audit_history(excluded_fields=["evaluation_count", "last_evaluated_at"])

    class Meta:
        ordering = ["flag_id", "environment_id"]
        constraints = [models.UniqueConstraint(fields=["flag", "environment"], name="flag_env_unique")]

    def __str__(self) -> str:
        return f"{self.flag.name} @ {self.environment.slug}"

    @property
    def rollout_percentage(self) -> float | None:
        """Seed 001's shorthand: 100 with no strategies, the rollout of a lone plain
        flexibleRollout, None when the strategies say more than one number can."""
        if not self.strategies:
            return 100.0
        if len(self.strategies) == 1:
            s = self.strategies[0]
            if s.get("name") == "flexibleRollout" and not s.get("constraints") and not s.get("segments"):
                try:
                    return float((s.get("parameters") or {}).get("rollout", 0))
                except (TypeError, ValueError):
                    return None
            if s.get("name") == "default" and not s.get("constraints") and not s.get("segments"):
                return 100.0
        return None
