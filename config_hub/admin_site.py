"""The operators' admin site: a home page that answers "is anything wrong?", and the
extra pages (compare and promote environments, import and export)."""
from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, Q
from django.urls import path


def dashboard() -> dict:
    """Figures for the admin home, each one query (stale flags: see :func:`flags.selectors.stale_flags`)."""
    from events.models import Event, WebhookSubscription
    from flags.selectors import stale_flags
    from registry.models import Instance
    from tenants.models import Tenant

    tenants = Tenant.objects.annotate(
        n_configs=Count("configs", distinct=True), n_flags=Count("flags", distinct=True),
        n_instances=Count("services__instances", distinct=True),
    ).order_by("slug")
    return {
        "tenants": tenants,
        "unhealthy": Instance.objects.select_related("service__tenant").filter(status="unhealthy").order_by("-last_heartbeat")[:20],
        "unhealthy_count": Instance.objects.filter(status="unhealthy").count(),
        "failing_webhooks": WebhookSubscription.objects.select_related("tenant").filter(
            Q(failing_since__isnull=False) | Q(is_active=False)).order_by("failing_since")[:20],
        "stale_flags": stale_flags(limit=20),
        "latest_events": Event.objects.order_by("-id")[:20],
    }


class HubAdminSite(admin.AdminSite):
    site_header = "Config hub"
    site_title = "Config hub"
    index_title = "Operations"

    def index(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "dashboard": dashboard()}
        return super().index(request, extra_context)

    def get_urls(self):
        from . import admin_views

        return [
            path("compare/", self.admin_view(admin_views.compare_environments), name="compare"),
            path("transfer/", self.admin_view(admin_views.transfer), name="transfer"),
        ] + super().get_urls()
