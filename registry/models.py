"""Services and their running instances."""
from __future__ import annotations

from django.db import models

from core.audit import audit_history
from core.fields import EncryptedJSONField
from core.validators import MAX_URL_LENGTH, validate_service_url

HEALTHY = "healthy"
UNHEALTHY = "unhealthy"
OUT_OF_SERVICE = "out_of_service"
STARTING = "starting"
STATUSES = [(HEALTHY, "healthy"), (UNHEALTHY, "unhealthy"), (OUT_OF_SERVICE, "out of service"), (STARTING, "starting")]
# Statuses the sweep watches: an instance in one of them must keep beating.
LIVE = (HEALTHY, STARTING)


class Service(models.Model):
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="services")
    name = models.CharField(max_length=100)
    owner = models.CharField(max_length=200, blank=True, default="")
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    history = audit_history()

    class Meta:
        ordering = ["tenant_id", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="service_unique_name")]

    def __str__(self) -> str:
        return self.name


class Instance(models.Model):
    """One running copy of a service. Its integer id is the ``service_id`` a service token and
    ``POST /heartbeat`` name.

    Heartbeats that do not change the status are buffered in Redis and written to
    ``last_heartbeat`` set-based by ``heartbeat_flush`` (one conditional UPDATE
    each without Redis), with no history row (the history holds registrations and
    status changes, not beats).
    """

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="instances")
    url = models.CharField(max_length=MAX_URL_LENGTH, validators=[validate_service_url])
    health_check_url = models.CharField(max_length=MAX_URL_LENGTH, blank=True, default="", validators=[validate_service_url])
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=STATUSES, default=HEALTHY)
    last_heartbeat = models.DateTimeField()
    response_time_ms = models.FloatField(null=True, blank=True)
    registered_at = models.DateTimeField(auto_now_add=True)
    registered_by = models.CharField(max_length=150, blank=True, default="")
    # Active checks: consecutive results, so one failed probe does not flap discovery.
    check_failures = models.PositiveIntegerField(default=0)
    check_successes = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["service_id", "id"]
        constraints = [models.UniqueConstraint(fields=["service", "url"], name="instance_unique_url")]
        # No index on ``status`` or ``last_heartbeat`` (migration 0004): a status
        # change or a flushed beat then rewrites the row in its page (a HOT update,
        # with room left by the table's fillfactor of 50: every beat flush rewrites
        # every live row) and touches no index. The sweep's set-based UPDATE of
        # 50,000 rows writes a quarter of the WAL it did with three such indexes;
        # its scan of the table costs milliseconds. Discovery finds a service's
        # instances by the service's own index.

    def __str__(self) -> str:
        return f"{self.service.name} #{self.pk} {self.url}"


class SweepState(models.Model):
    """One row: when the beat last swept, and when the hub came back after a gap.

    Self-preservation: if no sweep ran for longer than the TTL (hub or beat down),
    ``resumed_at`` is set and nobody is marked until a full TTL after it, so the
    fleet gets a whole TTL to beat again before any instance is judged.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_sweep_at = models.DateTimeField(null=True, blank=True)
    resumed_at = models.DateTimeField(null=True, blank=True)


class ServiceTokenSecret(models.Model):
    """One tenant's HS256 secret for its service tokens; several may be
    active at once, so a secret rotates without downtime (add, move the services,
    revoke the old one). A token names its secret with its ``kid`` header, or is
    tried against every active secret of the tenant its ``service_id`` belongs to.
    Stored with Fernet (FERNET_KEYS), shown once on creation."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="service_token_secrets")
    kid = models.CharField("key id", max_length=40, unique=True, editable=False)
    name = models.CharField(max_length=100, blank=True, default="")
    secret = EncryptedJSONField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True, default="", editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["tenant_id", "-created_at"]
        verbose_name = "service token secret"

    def __str__(self) -> str:
        return f"{self.kid} ({self.name})" if self.name else self.kid
