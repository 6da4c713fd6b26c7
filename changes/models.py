"""Protection policies of environments, change requests and their reviews."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.fields import EncryptedJSONField


class EnvironmentPolicy(models.Model):
    """How a change reaches an environment. ``tenant`` NULL: the global default of
    the environment, which a tenant's own row may tighten, never loosen.

    ``approvals_required`` 0 means the environment is not protected: direct writes
    go through. 1 or more: every write goes through a change request with that
    many approvals."""

    tenant = models.ForeignKey("tenants.Tenant", null=True, blank=True, on_delete=models.CASCADE,
                               related_name="environment_policies", help_text="Empty: the global default.")
    environment = models.ForeignKey("tenants.Environment", on_delete=models.CASCADE, related_name="policies")
    approvals_required = models.PositiveSmallIntegerField(default=0)
    author_may_approve = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        verbose_name = "environment policy"
        verbose_name_plural = "environment policies"
        ordering = ["environment_id", "tenant_id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "environment"], condition=Q(tenant__isnull=False),
                                    name="policy_unique_tenant_env"),
            models.UniqueConstraint(fields=["environment"], condition=Q(tenant__isnull=True),
                                    name="policy_unique_global_env"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant.slug if self.tenant_id else '(global)'} / {self.environment.slug}"


class ChangeRequest(models.Model):
    DRAFT, OPEN, APPROVED, SCHEDULED = "draft", "open", "approved", "scheduled"
    APPLIED, DECLINED, CANCELLED, CONFLICTED = "applied", "declined", "cancelled", "conflicted"
    STATUS_CHOICES = [(s, s) for s in (DRAFT, OPEN, APPROVED, SCHEDULED, APPLIED, DECLINED, CANCELLED, CONFLICTED)]
    # Where a request can still change; the rest are final.
    LIVE = (DRAFT, OPEN, APPROVED, SCHEDULED, CONFLICTED)

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="change_requests")
    environment = models.ForeignKey("tenants.Environment", on_delete=models.PROTECT, related_name="change_requests")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    status = models.CharField(max_length=12, choices=STATUS_CHOICES, default=OPEN)
    # The changes as API.md writes them; a secret's value is never here (``value``
    # is null) but in ``secret_values``, encrypted, by the change's index.
    changes = models.JSONField(default=list)
    secret_values = EncryptedJSONField(null=True, blank=True, editable=False)
    # Per change, what its target was when the request was opened (or refreshed):
    # {"version": n} or {"version": None} for "absent". Applying compares.
    base = models.JSONField(default=list)
    conflicts = models.JSONField(default=list, blank=True)
    author = models.CharField(max_length=150)
    author_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    apply_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    applied_by = models.CharField(max_length=150, blank=True, default="")
    # Bumped by every edit of the changes: an approval names the revision it approved.
    revision = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("approve_changerequest", "Can approve and decline change requests")]
        indexes = [
            # The beat's look-up of due scheduled requests stays cheap however many were applied.
            models.Index(fields=["apply_at"], condition=Q(status="scheduled"), name="cr_due_idx"),
            models.Index(fields=["tenant", "status"], name="cr_tenant_status_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"


class Review(models.Model):
    """One reviewer's approval or decline of one revision of a request. Approvals
    are deleted when the request is edited (they approved something else)."""

    APPROVE, DECLINE = "approve", "decline"
    change_request = models.ForeignKey(ChangeRequest, on_delete=models.CASCADE, related_name="reviews")
    decision = models.CharField(max_length=8, choices=[(APPROVE, APPROVE), (DECLINE, DECLINE)])
    actor = models.CharField(max_length=150)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    revision = models.PositiveIntegerField()
    comment = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["change_request", "actor"], name="review_once_per_actor")]

    def __str__(self) -> str:
        return f"{self.actor} {self.decision}s #{self.change_request_id}"
