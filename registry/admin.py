"""The registry as a status board: colour per status, heartbeat age, drain and restore."""
from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.html import format_html

from core.admin import ChangeReasonMixin, ServiceDeleteMixin, ShownOnceMixin, actor_of

from . import services, tokens
from .models import HEALTHY, OUT_OF_SERVICE, STARTING, UNHEALTHY, Instance, Service, ServiceTokenSecret

COLOURS = {HEALTHY: "#2e7d32", UNHEALTHY: "#c62828", OUT_OF_SERVICE: "#6d4c41", STARTING: "#f9a825"}


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = ("id", "service", "tenant", "url", "status_badge", "heartbeat_age", "response_time_ms", "version", "region")
    list_filter = ("status", "service__name", "service__tenant")
    search_fields = ("url", "service__name")
    list_select_related = ("service__tenant",)
    readonly_fields = ("service", "url", "health_check_url", "metadata", "status", "last_heartbeat", "response_time_ms",
                       "registered_at", "registered_by", "check_failures", "check_successes")
    actions = ["drain", "restore"]
    ordering = ("service__name", "id")

    def has_add_permission(self, request):
        return False  # instances register themselves

    @admin.display(description="tenant")
    def tenant(self, obj):
        return obj.service.tenant.slug

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return format_html('<span class="status-badge" style="background:{};color:#fff;padding:2px 8px;border-radius:8px">{}</span>',
                           COLOURS.get(obj.status, "#999"), obj.status)

    @admin.display(description="last heartbeat", ordering="last_heartbeat")
    def heartbeat_age(self, obj):
        seconds = int((timezone.now() - obj.last_heartbeat).total_seconds())
        return f"{seconds}s ago" if seconds < 120 else f"{seconds // 60}m ago"

    @admin.display(description="version")
    def version(self, obj):
        return obj.metadata.get("version", "")

    @admin.display(description="region")
    def region(self, obj):
        return obj.metadata.get("region", "")

    @admin.action(description="Drain (out of service): never discovered, still registered")
    def drain(self, request, queryset):
        for instance in queryset:
            services.instance_drain(instance=instance, actor=actor_of(request), user_id=request.user.pk)
        self.message_user(request, f"Drained {queryset.count()} instance(s).")

    @admin.action(description="Restore to healthy")
    def restore(self, request, queryset):
        for instance in queryset:
            services.instance_restore(instance=instance, actor=actor_of(request), user_id=request.user.pk)
        self.message_user(request, f"Restored {queryset.count()} instance(s).")

    def delete_model(self, request, obj):
        services.instance_deregister(instance_id=obj.pk, tenant_id=None, actor=actor_of(request))

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(Service)
class ServiceAdmin(ChangeReasonMixin, admin.ModelAdmin):
    list_display = ("name", "tenant", "owner", "healthy_count", "total_count")
    list_filter = ("tenant",)
    search_fields = ("name", "owner")
    readonly_fields = ("tenant", "name")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("tenant").annotate(
            total=Count("instances"), healthy=Count("instances", filter=Q(instances__status=HEALTHY))
        )

    @admin.display(description="healthy", ordering="healthy")
    def healthy_count(self, obj):
        return obj.healthy

    @admin.display(description="instances", ordering="total")
    def total_count(self, obj):
        return obj.total

    def has_add_permission(self, request):
        return False

    def delete_model(self, request, obj):
        services.service_delete(service=obj, actor=actor_of(request))

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)

    def save_model(self, request, obj, form, change):
        services.service_update(service=obj, owner=obj.owner, description=obj.description, actor=actor_of(request),
                                user_id=request.user.pk)


@admin.register(ServiceTokenSecret)
class ServiceTokenSecretAdmin(ShownOnceMixin, ServiceDeleteMixin, admin.ModelAdmin):
    """A tenant's secrets for the service tokens: the secret is shown once, in
    the page answering the add; rotate by adding one, moving the services, revoking
    the old one."""

    shown_once_title, shown_once_label, shown_once_element_id = (
        "Service token secret created", "secret (the services' JWT_SECRET)", "new-service-token-secret")
    fields = ("tenant", "name", "kid", "created_at", "created_by", "revoked_at")
    readonly_fields = ("kid", "created_at", "created_by", "revoked_at")
    list_display = ("kid", "name", "tenant", "state", "created_at", "created_by")
    list_filter = ("tenant",)
    search_fields = ("kid", "name")
    list_select_related = ("tenant",)
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        return self.fields if obj else self.readonly_fields

    @admin.display(description="state")
    def state(self, obj):
        if obj.revoked_at:
            return format_html('<span style="color:#ba2121">revoked</span>')
        return format_html('<span style="color:#2e7d32">active</span>')

    def save_model(self, request, obj, form, change):
        if change:
            return  # nothing of a secret changes after creation: revoke it and add another
        row, raw = tokens.service_token_secret_create(tenant=obj.tenant, name=obj.name, actor=actor_of(request))
        obj.pk, obj.kid = row.pk, row.kid
        request._shown_once = raw  # shown by response_add in the page itself, once

    def delete_model(self, request, obj):
        tokens.service_token_secret_delete(secret=obj, actor=actor_of(request))

    @admin.action(description="Revoke selected secrets (their tokens are refused at once)")
    def revoke(self, request, queryset):
        for secret in queryset.select_related("tenant"):
            tokens.service_token_secret_revoke(secret=secret, actor=actor_of(request))
        self.message_user(request, f"Revoked {queryset.count()} secret(s).")
