"""Feature flags of a tenant, their state per environment, and reusable segments.

A flag's per-environment row holds Unleash-shaped strategies (constraints,
segments, parameters, strategy variants), so the state of a tenant and an
environment *is* an Unleash ``/client/features`` document: the engine in
``flags/engine`` evaluates it unchanged, and Unleash exports import as they are.
"""
from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError
from django.db import models

from core.audit import audit_history

FLAG_NAME_MAX = 200
_NAME_PUNCTUATION = frozenset("_.:-~")
# Letters, digits and marks of any script (Unleash's own test vectors name flags
# "Feature.UTF-8.Hellø_Wørld" and "Feature.UTF-8.😊_φriend_你好_🌍"), emoji
# (symbols, their modifiers and the zero-width joiner of emoji sequences).
_NAME_CATEGORIES = ("L", "N", "M")
_EMOJI_CATEGORIES = frozenset({"So", "Sk"})
_ZWJ = "\u200d"
FLAG_NAME_RULE = (f"a flag name is 1 to {FLAG_NAME_MAX} letters, digits, '_', '.', ':', '-' or '~' (any script, "
                  "emoji too), starting with a letter or digit")


def flag_name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a flag, or None. Names travel in URLs (OFREP's
    path, the Unleash client API), logs, webhook bodies and the admin: no '<',
    '/', spaces, line breaks, control or format characters (the bidirectional
    overrides among them) and no unpaired surrogates."""
    if not isinstance(name, str) or not name:
        return "a flag needs a name"
    if len(name) > FLAG_NAME_MAX:
        return f"a flag name has at most {FLAG_NAME_MAX} characters (this one has {len(name)})"
    for index, ch in enumerate(name):
        if ch.isascii():
            ok = ch.isalnum() or (index > 0 and ch in _NAME_PUNCTUATION)
        else:
            category = unicodedata.category(ch)
            ok = category.startswith(_NAME_CATEGORIES) if index == 0 else (
                category.startswith(_NAME_CATEGORIES) or category in _EMOJI_CATEGORIES or ch == _ZWJ)
        if not ok:
            return f"{FLAG_NAME_RULE}: character {index + 1} (U+{ord(ch):04X}) is not allowed"
    return None


def flag_name_validator(name: object) -> None:
    """``flag_name_problem`` as a Django validator (the admin's forms)."""
    problem = flag_name_problem(name)
    if problem:
        raise ValidationError(problem, code="invalid_flag_name")


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
    # The environment the shorthand (is_enabled, rollout_percentage) addresses
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
        verbose_name = "flag state"

    def __str__(self) -> str:
        return f"{self.flag.name} @ {self.environment.slug}"

    @property
    def rollout_percentage(self) -> float | None:
        """The shorthand's percentage: 100 with no strategies, the rollout of a lone plain
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
