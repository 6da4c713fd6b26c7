"""Webhook subscriptions and their deliveries (every attempt; send again), and events."""
from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils.html import format_html

from core.admin import ChangeReasonMixin, PrettyJSONField, ServiceDeleteMixin, ShownOnceMixin, actor_of
from core.errors import DomainError

from . import services
from .models import DeliveryAttempt, Event, WebhookDelivery, WebhookSubscription
from .tasks import delivery_resend


class SubscriptionForm(forms.ModelForm):
    resource_types = PrettyJSONField(required=False, initial=list, help_text='e.g. ["config", "flag"]; empty = all')

    class Meta:
        model = WebhookSubscription
        fields = ("tenant", "url", "description", "resource_types", "key_prefix", "environment", "service_name", "is_active")

    def clean(self):
        # The service's own checks (filter, the outbound policy, the per-tenant cap),
        # shown on the form instead of a 500 from save_model.
        data = super().clean()
        problems = services.webhook_filter_problems(resource_types=data.get("resource_types"),
                                                    environment=data.get("environment"))
        for field, messages in problems.items():
            for message in messages:
                self.add_error(field, message)
        url = data.get("url")
        try:
            if url and (self.instance.pk is None or url != self.instance.url):
                services.webhook_url_check(url)
            if self.instance.pk is None and data.get("tenant") is not None:
                services.webhook_quota_check(data["tenant"])
        except DomainError as exc:
            self.add_error("url" if isinstance(exc.details, dict) and "url" in exc.details else None, exc.message)
        return data


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(ChangeReasonMixin, ShownOnceMixin, ServiceDeleteMixin, admin.ModelAdmin):
    shown_once_title, shown_once_label, shown_once_element_id = "Webhook subscription created", "signing secret", "webhook-secret"
    form = SubscriptionForm
    list_display = ("url", "filter", "tenant", "state", "failing_since", "created_at")
    list_filter = ("tenant", "is_active", "environment", "service_name")
    search_fields = ("url", "description", "key_prefix")
    list_select_related = ("tenant",)

    @admin.display(description="filter")
    def filter(self, obj):
        return obj.filter_label
    readonly_fields = ("failing_since", "disabled_at")

    @admin.display(description="state")
    def state(self, obj):
        if not obj.is_active:
            return format_html('<span style="color:#c62828">disabled</span>')
        if obj.failing_since:
            return format_html('<span style="color:#f9a825">failing</span>')
        return format_html('<span style="color:#2e7d32">active</span>')

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            services.webhook_update(subscription=obj, actor=actor_of(request), user_id=request.user.pk,
                                    **{k: data.get(k) for k in ("url", "description", "resource_types", "key_prefix",
                                                               "environment", "service_name", "is_active")})
        else:
            sub = services.webhook_create(tenant=data["tenant"], url=data["url"], resource_types=data.get("resource_types") or [],
                                          key_prefix=data.get("key_prefix", ""), environment=data.get("environment", ""),
                                          service_name=data.get("service_name", ""), description=data.get("description", ""),
                                          actor=actor_of(request), user_id=request.user.pk)
            obj.pk = sub.pk
            request._shown_once = sub.secret  # shown by response_add in the page itself, never in a cookie


    def delete_model(self, request, obj):
        services.webhook_delete(subscription=obj, actor=actor_of(request), user_id=request.user.pk)


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = readonly_fields = ("at", "response_code", "error", "duration")

    @admin.display(description="duration")
    def duration(self, obj):
        return f"{obj.duration_ms:.0f} ms"

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("delivery", "event", "receiver", "status", "attempts", "last_response_code", "next_attempt_at", "delivered_at")
    list_filter = ("status", "subscription__tenant", "event__environment", "event__service_name")
    list_select_related = ("event", "subscription")

    @admin.display(description="delivery", ordering="id")
    def delivery(self, obj):
        return f"#{obj.pk}"

    @admin.display(description="subscription")
    def receiver(self, obj):
        return str(obj.subscription)
    readonly_fields = ("event", "subscription", "status", "attempts", "next_attempt_at", "last_response_code", "last_error",
                       "created_at", "delivered_at")
    inlines = [AttemptInline]
    actions = ["send_again"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Send again")
    def send_again(self, request, queryset):
        for delivery in queryset:
            delivery_resend(delivery_id=delivery.pk, actor=actor_of(request))
        self.message_user(request, f"Queued {queryset.count()} delivery(ies) again.")
@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("id", "when", "tenant_slug", "change", "key", "environment", "service_name", "actor", "dispatched")
    list_filter = ("resource_type", "action", "tenant_slug", "environment", "service_name")
    ordering = ("-id",)  # newest first

    @admin.display(description="when", ordering="id")
    def when(self, obj):
        return f"{obj.created_at:%Y-%m-%d %H:%M:%S}"

    @admin.display(description="change", ordering="resource_type")
    def change(self, obj):
        return f"{obj.resource_type}.{obj.action}"

    @admin.display(description="dispatched", boolean=True)
    def dispatched(self, obj):
        return obj.dispatched_at is not None
    search_fields = ("key", "actor")
    readonly_fields = [f.name for f in Event._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # Events are the audit trail and the outbox: nobody deletes them from the admin.
        return False
