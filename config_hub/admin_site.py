"""The operators' admin site: a home page that answers "is anything wrong?", and the
extra pages (compare and promote environments, import and export)."""
from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.db.models import Count, Q
from django.urls import NoReverseMatch, path, reverse

from events.models import Event, WebhookSubscription
from flags.selectors import stale_flags
from registry.models import Instance
from tenants.models import Tenant

from . import admin_views


def _can_view(user, app_label: str, model_name: str) -> bool:
    """The admin's own rule: the view or the change permission shows a model."""
    return user.has_perm(f"{app_label}.view_{model_name}") or user.has_perm(f"{app_label}.change_{model_name}")


# Where a change event's object is in the admin: (admin URL name, what data["id"] is).
_EVENT_OBJECTS = {
    "config": "tenants_configentry", "schema": "tenants_configschema", "tenant": "tenants_tenant",
    "environment": "tenants_environment", "api_key": "tenants_apikey", "flag": "flags_flag",
    "segment": "flags_segment", "instance": "registry_instance", "webhook": "events_webhooksubscription",
}
# Apps listed in their own section of the home page, not among the operators' daily work.
SECURITY_APPS = ("axes",)


def event_link(event: Event) -> str:
    """The admin page of what an event is about (its object while it exists, else the event itself)."""
    name = _EVENT_OBJECTS.get(event.resource_type)
    object_id = (event.data or {}).get("id") if isinstance(event.data, dict) else None
    if name and isinstance(object_id, int) and event.action != "deleted":
        try:
            return reverse(f"admin:{name}_change", args=[object_id])
        except NoReverseMatch:
            pass
    return reverse("admin:events_event_change", args=[event.pk])


def dashboard(user) -> dict:
    """Figures for the admin home, each one query (stale flags: see :func:`flags.selectors.stale_flags`).

    Each panel is there only for a user who may view what it lists (a staff user
    without permissions sees none): tenants, registry instances, webhook
    subscriptions, flags, events. A panel left out is not even queried."""

    panels: dict = {}
    if _can_view(user, "tenants", "tenant"):
        panels["tenants"] = Tenant.objects.annotate(
            n_configs=Count("configs", distinct=True), n_flags=Count("flags", distinct=True),
            n_instances=Count("services__instances", distinct=True),
        ).order_by("slug")
    if _can_view(user, "registry", "instance"):
        panels["unhealthy"] = Instance.objects.select_related("service__tenant").filter(status="unhealthy").order_by("-last_heartbeat")[:20]
        panels["unhealthy_count"] = Instance.objects.filter(status="unhealthy").count()
    if _can_view(user, "events", "webhooksubscription"):
        panels["failing_webhooks"] = WebhookSubscription.objects.select_related("tenant").filter(
            Q(failing_since__isnull=False) | Q(is_active=False)).order_by("failing_since")[:20]
    if _can_view(user, "flags", "flag"):
        panels["stale_flags"] = stale_flags(limit=20)
    if _can_view(user, "events", "event"):
        panels["latest_events"] = [(e, event_link(e)) for e in Event.objects.order_by("-id")[:20]]
    if _can_view(user, "tenants", "configentry"):  # the compare and transfer pages' own rule (CONFIG_READ)
        panels["config_pages"] = True
    return panels


class HubAdminSite(admin.AdminSite):
    site_header = "Config hub"
    site_title = "Config hub"
    site_url = "/docs"  # the hub has no public site: the header's link ("API docs") leads to the API's docs
    index_title = "Operations"
    # Lists get the page's whole width (the home page lists every app already).
    enable_nav_sidebar = False

    def index(self, request, extra_context=None):
        # The login-lockout tables (django-axes) are security's, not the operators'
        # daily work: listed in a section of their own below the apps.
        apps = self.get_app_list(request)
        extra_context = {
            **(extra_context or {}), "dashboard": dashboard(request.user),
            "app_list": [a for a in apps if a["app_label"] not in SECURITY_APPS],
            "security_apps": [a for a in apps if a["app_label"] in SECURITY_APPS],
        }
        return super().index(request, extra_context)

    def login(self, request, extra_context=None):
        # Single sign-on's button, and the password form only while password login is on.
        extra_context = {**(extra_context or {}), "sso_enabled": settings.OIDC_ENABLED,
                         "sso_label": settings.OIDC_LOGIN_LABEL, "password_login": settings.PASSWORD_LOGIN,
                         "sso_failed": request.GET.get("sso") == "failed"}
        return super().login(request, extra_context)

    def get_urls(self):
        return [
            path("compare/", self.admin_view(admin_views.compare_environments), name="compare"),
            path("transfer/", self.admin_view(admin_views.transfer), name="transfer"),
        ] + super().get_urls()
