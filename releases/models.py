"""Releases (immutable, content-addressed snapshots of a tenant and environment) and
pins (a service's config reads answered from a release until it is unpinned)."""
from __future__ import annotations

from django.db import models

from core.audit import audit_history
from core.errors import Conflict
from core.fields import EncryptedJSONField
from tenants.models import service_validator

RELEASE_NAME_MAX = 200


class ReleaseImmutable(Conflict):
    code = "release_immutable"


class ReleaseQuerySet(models.QuerySet):
    def update(self, **kwargs):
        # A bulk UPDATE would go around Release.save: a release never changes. The
        # one exception is the key rotation (``rotate_fernet_keys``), which writes
        # each row's secrets back unchanged, encrypted with the newest key.
        if set(kwargs) != {"secrets"} or any(row.secrets != kwargs["secrets"] for row in self.only("secrets")):
            raise ReleaseImmutable("a release is immutable: create a new one instead")
        return super().update(**kwargs)


class Release(models.Model):
    """What a tenant's environment resolved to at one moment (releases/snapshot.py).

    ``content`` holds every resolved config value (for the tenant and for each
    known service), the entries they were resolved from, every flag state, the
    tenant's segments and the schemas' versions. A secret's value is never in
    ``content``: it names it by a keyed digest (``{"secret": "<ref>"}``) and the
    values live encrypted (MultiFernet, ``FERNET_KEYS``) in ``secrets``, a map
    ref -> value. ``digest`` is the SHA-256 of the canonical JSON of ``content``
    without entry ids and versions: equal contents, equal digests.
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="releases")
    environment = models.ForeignKey("tenants.Environment", on_delete=models.CASCADE, related_name="releases")
    name = models.CharField(max_length=RELEASE_NAME_MAX)
    digest = models.CharField(max_length=64, db_index=True)
    content = models.JSONField()
    secrets = EncryptedJSONField(default=dict, blank=True, editable=False)
    created_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ReleaseQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "environment", "name"], name="release_unique_name"),
        ]
        indexes = [models.Index(fields=["tenant", "environment", "-created_at"], name="release_list_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.environment_id and self.environment.slug})"

    def save(self, *args, **kwargs):
        # Immutable: a row is written once. Every path (admin, API, shell) ends here.
        if not self._state.adding:
            raise ReleaseImmutable(f"release {self.pk} is immutable: create a new one instead")
        super().save(*args, **kwargs)


class Pin(models.Model):
    """``service_name`` of ``tenant`` reads its configs in ``environment`` from ``release``."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    environment = models.ForeignKey("tenants.Environment", on_delete=models.CASCADE, related_name="+")
    service_name = models.CharField(max_length=100, validators=[service_validator])
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="pins")
    created_at = models.DateTimeField(auto_now_add=True)

    history = audit_history()

    class Meta:
        ordering = ["tenant_id", "environment_id", "service_name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "environment", "service_name"], name="pin_unique_service"),
        ]

    def __str__(self) -> str:
        return f"{self.service_name} → {self.release.name}"
