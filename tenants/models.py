"""Tenants, environments, config entries, schemas and API keys."""
from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from core.audit import audit_history
from core.fields import EncryptedJSONField

slug_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$",
    "Use lowercase letters, digits, '-' and '_' (at most 64 characters).",
)
key_validator = RegexValidator(
    r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,199}$",
    "A key is letters, digits, '_', '.', ':' or '-' (at most 200 characters).",
)
service_validator = RegexValidator(
    r"^(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,99})?$",
    "A service name is letters, digits, '_', '.' or '-' (at most 100 characters).",
)

DEFAULT_TENANT_SLUG = "default"


class Tenant(models.Model):
    slug = models.SlugField(max_length=64, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = audit_history()

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Environment(models.Model):
    slug = models.SlugField(max_length=64, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    history = audit_history()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.slug


class ConfigEntry(models.Model):
    """One JSON value for a key in one scope.

    Scope: ``tenant`` (NULL = global), ``environment`` (NULL = every environment),
    ``service_name`` ('' = every service). The empty string rather than NULL for
    "every service" keeps the service part of the unique constraints simple; the
    tenant/environment NULLs are handled by four partial unique constraints so
    that they work alike on PostgreSQL and SQLite.
    """

    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="configs")
    environment = models.ForeignKey(
        Environment, null=True, blank=True, on_delete=models.PROTECT, related_name="configs"
    )
    service_name = models.CharField(max_length=100, blank=True, default="", validators=[service_validator])
    key = models.CharField(max_length=200, validators=[key_validator])
    value = models.JSONField(null=True, blank=True)
    is_secret = models.BooleanField(default=False)
    # Secrets live only here, encrypted; ``value`` stays NULL for them.
    secret_value = EncryptedJSONField(null=True, blank=True, editable=False)
    description = models.TextField(blank=True, default="")
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = audit_history(excluded_fields=["secret_value"])

    class Meta:
        verbose_name = "config entry"
        verbose_name_plural = "config entries"
        ordering = ["key", "tenant_id", "environment_id", "service_name"]
        permissions = [("reveal_secret", "Can reveal secret config values")]
        indexes = [
            # The resolution query filters on key first, then the scope columns.
            models.Index(fields=["key", "tenant", "environment", "service_name"], name="cfg_resolve_idx"),
            models.Index(fields=["tenant", "service_name"], name="cfg_bundle_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "environment", "service_name", "key"],
                condition=Q(tenant__isnull=False, environment__isnull=False),
                name="cfg_unique_tenant_env",
            ),
            models.UniqueConstraint(
                fields=["tenant", "service_name", "key"],
                condition=Q(tenant__isnull=False, environment__isnull=True),
                name="cfg_unique_tenant_allenv",
            ),
            models.UniqueConstraint(
                fields=["environment", "service_name", "key"],
                condition=Q(tenant__isnull=True, environment__isnull=False),
                name="cfg_unique_global_env",
            ),
            models.UniqueConstraint(
                fields=["service_name", "key"],
                condition=Q(tenant__isnull=True, environment__isnull=True),
                name="cfg_unique_global_allenv",
            ),
        ]

    def __str__(self) -> str:
        tenant = self.tenant.slug if self.tenant_id else "global"
        env = self.environment.slug if self.environment_id else "*"
        return f"{self.key} @ {tenant}/{env}/{self.service_name or '*'}"

    @property
    def scope_label(self) -> str:
        """The resolution scope this entry fills, as ``source`` reports it."""
        parts = ["tenant" if self.tenant_id else "global"]
        if self.environment_id:
            parts.append("environment")
        if self.service_name:
            parts.append("service")
        return "+".join(parts)

    @property
    def plain_value(self):
        return self.secret_value if self.is_secret else self.value


class ConfigSchema(models.Model):
    """A JSON Schema (draft 2020-12) for one key; every write of the key is validated."""

    key = models.CharField(max_length=200, unique=True, validators=[key_validator])
    schema = models.JSONField()
    metadata = models.JSONField(default=dict, blank=True)
    required = models.BooleanField(default=False)
    default_value = models.JSONField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = audit_history()

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class ApiKey(models.Model):
    """A service's credential. Only a SHA-256 of the key is stored; it is shown once."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="api_keys",
        help_text="Empty: a platform key for every tenant.",
    )
    environment = models.ForeignKey(
        Environment, null=True, blank=True, on_delete=models.SET_NULL,
        help_text="Optional: the environment OFREP evaluations default to.",
    )
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    history = audit_history(excluded_fields=["key_hash", "last_used_at"])

    class Meta:
        verbose_name = "API key"
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class RoleAssignment(models.Model):
    """An operator's role in a tenant and an environment (tenants/roles.py, docs/admin.md).

    Held by a Django group (what single sign-on maps the identity provider's
    groups to) or by one user. ``tenant`` NULL means every tenant, ``environment``
    NULL every environment. The roles are ordered: each grants what the ones
    before it grant.
    """

    VIEWER, EDITOR, APPROVER, ADMIN = "viewer", "editor", "approver", "admin"
    ROLES = [(VIEWER, "viewer"), (EDITOR, "editor"), (APPROVER, "approver"), (ADMIN, "admin")]

    group = models.ForeignKey("auth.Group", null=True, blank=True, on_delete=models.CASCADE, related_name="hub_roles")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                             related_name="hub_roles")
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="roles",
                               help_text="Empty: every tenant.")
    environment = models.ForeignKey(Environment, null=True, blank=True, on_delete=models.CASCADE, related_name="roles",
                                    help_text="Empty: every environment.")
    role = models.CharField(max_length=16, choices=ROLES)
    created_at = models.DateTimeField(auto_now_add=True)

    history = audit_history()

    class Meta:
        ordering = ["tenant_id", "environment_id", "role"]
        constraints = [
            models.CheckConstraint(
                condition=Q(group__isnull=False, user__isnull=True) | Q(group__isnull=True, user__isnull=False),
                name="role_group_xor_user",
                violation_error_message="A role is held by a group or by a user: choose one of them.",
            ),
        ]

    def __str__(self) -> str:
        holder = f"group {self.group}" if self.group_id else f"user {self.user}"
        return f"{holder}: {self.role} in {self.tenant or 'every tenant'}/{self.environment or 'every environment'}"
