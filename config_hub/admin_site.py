"""The operators' admin site: a home page that answers "is anything wrong?", and the
extra pages (compare and promote environments, import and export)."""
from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.db.models import Count, F, Q
from django.urls import path
from django.utils import timezone
from django.utils.timesince import timesince


STALE_AFTER = timedelta(days=30)
_ROLLOUT_PARAMETER = {"flexibleRollout": "rollout", "gradualRolloutRandom": "percentage",
                      "gradualRolloutUserId": "percentage", "gradualRolloutSessionId": "percentage"}


def _serves_everyone(strategies) -> bool:
    """True when a state's strategies enable the flag for everyone: none at all, a
    ``default`` strategy, or a flexibleRollout/gradualRollout* at 100 - each without
    constraints or segments (strategies are OR-ed, so one such strategy is enough)."""
    if not strategies:
        return True
    for s in strategies:
        if not isinstance(s, dict) or s.get("constraints") or s.get("segments"):
            continue
        name = s.get("name")
        if name == "default":
            return True
        param = _ROLLOUT_PARAMETER.get(name)
        if param is not None:
            try:
                if float((s.get("parameters") or {}).get(param)) >= 100:
                    return True
            except (TypeError, ValueError):
                continue
    return False


def stale_flags(*, limit: int = 20, now=None) -> list:
    """Flag states worth cleaning up, each with ``stale_reason``: at most ``limit``.

    1. Not evaluated for 30 days. Evaluations are counted in Redis and flushed by
       a beat task into ``FlagEnvironment.last_evaluated_at`` (an UPDATE: it
       touches neither ``updated_at`` nor the history). A state never evaluated
       counts once it has not changed for 30 days.
    2. Served to everyone for 30 days: enabled, the flag has no dependencies, and
       its strategies serve everyone (:func:`_serves_everyone`); "for 30 days"
       comes from the state's audit history (simple-history, one row per save of
       the state): the state has been enabled-for-everyone in every version saved
       since 30 days ago and in the version in force then. A state not saved for
       30 days (``updated_at``) qualifies without reading history; rows without
       any history fall back to ``updated_at`` alone.
    Never-evaluated and least recently evaluated first, then the longest at 100%.
    """
    from flags.models import FlagEnvironment

    now = now or timezone.now()
    month_ago = now - STALE_AFTER
    base = FlagEnvironment.objects.select_related("flag__tenant", "environment")
    out, seen = [], set()
    for fe in base.filter(Q(last_evaluated_at__lt=month_ago) | Q(last_evaluated_at__isnull=True, updated_at__lt=month_ago)
                          ).order_by(F("last_evaluated_at").asc(nulls_first=True), "id")[:limit]:
        fe.stale_reason = (f"last evaluated {timesince(fe.last_evaluated_at, now)} ago" if fe.last_evaluated_at
                           else "never evaluated")
        out.append(fe)
        seen.add(fe.pk)
    if len(out) >= limit:
        return out
    full = [fe for fe in base.filter(enabled=True, flag__dependencies=[]).exclude(pk__in=seen).order_by("updated_at", "id")
            if _serves_everyone(fe.strategies)]
    since = {fe.pk: fe.updated_at for fe in full if fe.updated_at < month_ago}
    recent = [fe.pk for fe in full if fe.pk not in since]
    if recent:
        history = FlagEnvironment.history.filter(id__in=recent).order_by("id", "-history_date", "-history_id")
        walking: dict[int, object] = {}
        done: set[int] = set()
        for rec in history.only("id", "history_date", "enabled", "strategies", "history_type"):
            if rec.id in done:
                continue
            if rec.history_type != "-" and rec.enabled and _serves_everyone(rec.strategies):
                walking[rec.id] = rec.history_date  # still everyone's since at least then
                if rec.history_date < month_ago:
                    done.add(rec.id)
            else:
                done.add(rec.id)  # the run of serving everyone starts after this record
        since.update({pk: at for pk, at in walking.items() if at < month_ago})
    for fe in sorted((fe for fe in full if fe.pk in since), key=lambda fe: since[fe.pk]):
        if len(out) >= limit:
            break
        fe.stale_reason = f"served to everyone for {timesince(since[fe.pk], now)}"
        out.append(fe)
    return out


def dashboard() -> dict:
    """Figures for the admin home, each one query (stale flags: see :func:`stale_flags`)."""
    from events.models import Event, WebhookSubscription
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
