"""Writing change events: the one function every change goes through."""
from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction

from core import directory
from core.audit import current_reason, set_actor
from core.errors import ValidationFailed
from core.jsonvalue import validate_json_value
from core.outbound import literal_host_blocked
from core.validators import url_check

from .messages import new_secret
from .models import RESOURCE_TYPES, Event, WebhookSubscription

logger = logging.getLogger(__name__)


def event_record(
    *,
    tenant,
    resource_type: str,
    action: str,
    actor: str,
    key: str = "",
    environment: str = "",
    service_name: str = "",
    version: int | None = None,
    data: dict[str, Any] | None = None,
) -> Event:
    """Write an event in the caller's transaction and dispatch it after commit.

    Must be called inside the same ``transaction.atomic()`` block as the change,
    so a rolled-back change is never announced and a committed one always is
    (the outbox sweep picks up anything whose after-commit dispatch was lost).
    ``data`` must never hold a secret value: callers pass ``value_changed`` flags
    for secrets instead. An operator's change reason (``core.audit.change_reason``)
    is added as ``data["reason"]``.
    """
    reason = current_reason()
    if reason and "reason" not in (data or {}):
        data = {**(data or {}), "reason": reason}
    event = Event.objects.create(
        tenant=tenant,
        tenant_slug=getattr(tenant, "slug", "") or "",
        resource_type=resource_type,
        action=action,
        key=key,
        environment=environment or "",
        service_name=service_name or "",
        version=version,
        actor=actor,
        data=data or {},
    )
    transaction.on_commit(lambda: event_after_commit(event_id=event.pk))
    return event


def events_record_many(rows: list[dict[str, Any]]) -> list[Event]:
    """Write many events in one INSERT (the registry sweep), in the caller's transaction.

    Each row takes the keyword arguments of :func:`event_record`.
    """
    if not rows:
        return []
    events = [
        Event(
            tenant_id=row.get("tenant_id"),
            tenant_slug=row.get("tenant_slug", ""),
            resource_type=row["resource_type"],
            action=row["action"],
            key=row.get("key", ""),
            environment=row.get("environment", ""),
            service_name=row.get("service_name", ""),
            version=row.get("version"),
            actor=row["actor"],
            data=row.get("data") or {},
        )
        for row in rows
    ]
    created = Event.objects.bulk_create(events)
    ids = [e.pk for e in created if e.pk is not None]

    transaction.on_commit(lambda: events_after_commit(event_ids=ids))
    return created


def event_after_commit(*, event_id: int) -> None:
    """Hand a committed event to the dispatcher. Failure here loses nothing: the
    outbox sweep sends any event whose ``dispatched_at`` is still empty."""
    events_after_commit(event_ids=[event_id])


def events_after_commit(*, event_ids: list[int]) -> None:
    """Hand committed events to the dispatcher, in order; a hook registered with
    ``many=`` takes them all in one call (one wake-up, one queued task for a sweep's
    hundred events, not a hundred)."""
    if not event_ids:
        return
    for hook in list(_after_commit_hooks):
        many = _after_commit_many.get(hook)
        for batch in ([event_ids] if many else [[event_id] for event_id in event_ids]):
            try:
                many(batch) if many else hook(batch[0])
            except Exception:  # noqa: BLE001 - a broker outage must not fail the request
                logger.warning("events %s: after-commit hook %s failed; the sweep will retry", batch[:10],
                               getattr(hook, "__name__", hook))


_after_commit_hooks: list = []
_after_commit_many: dict = {}


def register_after_commit_hook(hook, *, many=None) -> None:
    """Let the dispatcher (Celery fan-out, long-poll wake-up) listen to committed
    events: ``hook(event_id)``, and ``many(event_ids)`` for several at once."""
    if hook not in _after_commit_hooks:
        _after_commit_hooks.append(hook)
    if many is not None:
        _after_commit_many[hook] = many


# --- webhook subscriptions ------------------------------------------------------------


def webhook_filter_problems(*, resource_types: Any = None, environment: Any = None) -> dict[str, list[str]]:
    """What is wrong with a subscription's filter, by field: resource types must be
    known types and an environment must exist (a typo would subscribe to nothing)."""

    problems: dict[str, list[str]] = {}
    if resource_types:
        if not isinstance(resource_types, list) or not all(isinstance(t, str) for t in resource_types):
            problems["resource_types"] = ["a list of resource types"]
        else:
            unknown = [t for t in resource_types if t not in RESOURCE_TYPES]
            if unknown:
                problems["resource_types"] = [f"unknown resource type '{t}' (known: {', '.join(RESOURCE_TYPES)})" for t in unknown]
    if environment and not directory.environment_exists(slug=environment):
        problems["environment"] = [f"unknown environment '{environment}'"]
    return problems


def _check_filter(**fields: Any) -> None:
    problems = webhook_filter_problems(**fields)
    if problems:
        raise ValidationFailed("; ".join(m for messages in problems.values() for m in messages), details=problems)
def webhook_url_check(url: str) -> None:
    """A webhook URL: the hub's URL rule (``core.validators``), and not an address
    literal the outbound policy refuses (names are judged when sending, after resolving)."""

    url_check(url, "url")
    if literal_host_blocked(url):
        message = ("the hub may not call this address (loopback, private, link-local or reserved); "
                   "an operator can allow internal receivers with OUTBOUND_ALLOW")
        raise ValidationFailed(f"url: {message}", details={"url": [message]})


def webhook_quota_check(tenant) -> None:
    """At most WEBHOOK_MAX_PER_TENANT subscriptions per tenant."""



    cap = settings.WEBHOOK_MAX_PER_TENANT
    if WebhookSubscription.objects.filter(tenant_id=tenant.pk).count() >= cap:
        raise ValidationFailed(f"a tenant has at most {cap} webhook subscriptions; delete one first",
                               code="limit_exceeded", details={"limit": cap})


def webhook_create(*, tenant, url: str, resource_types: list[str] | None = None, key_prefix: str = "",
                   environment: str = "", service_name: str = "", description: str = "", actor: str,
                   user_id: int | None = None):
    """Create a subscription; returns (subscription, secret). The secret is shown on creation."""


    validate_json_value(resource_types, what="resource_types")
    _check_filter(resource_types=resource_types, environment=environment)
    webhook_url_check(url)
    sub = WebhookSubscription(tenant=tenant, url=url, resource_types=resource_types or [], key_prefix=key_prefix or "",
                              environment=environment or "", service_name=service_name or "", description=description or "",
                              secret=new_secret())
    with transaction.atomic():
        # One create at a time per tenant, so the cap holds (the tenant's own row, locked).
        type(tenant).objects.select_for_update().filter(pk=tenant.pk).first()
        webhook_quota_check(tenant)
        set_actor(sub, actor, user_id=user_id)
        sub.save()
        event_record(tenant=tenant, resource_type="webhook", action="created", actor=actor, key=url,
                     data={"id": sub.pk, "resource_types": sub.resource_types})
    return sub


def webhook_update(*, subscription, actor: str, user_id: int | None = None, **changes: Any):

    allowed = {"url", "resource_types", "key_prefix", "environment", "service_name", "description", "is_active"}
    validate_json_value(changes.get("resource_types"), what="resource_types")
    _check_filter(resource_types=changes.get("resource_types"), environment=changes.get("environment"))
    if changes.get("url") is not None and changes["url"] != subscription.url:
        webhook_url_check(changes["url"])
    for name, value in changes.items():
        if name in allowed and value is not None:
            setattr(subscription, name, value)
    if changes.get("is_active") is True:
        subscription.disabled_at = None
        subscription.failing_since = None
    with transaction.atomic():
        set_actor(subscription, actor, user_id=user_id)
        subscription.save()
        event_record(tenant=subscription.tenant, resource_type="webhook", action="updated", actor=actor,
                     key=subscription.url, data={"id": subscription.pk})
    return subscription


def webhook_delete(*, subscription, actor: str, user_id: int | None = None) -> None:

    with transaction.atomic():
        event_record(tenant=subscription.tenant, resource_type="webhook", action="deleted", actor=actor,
                     key=subscription.url, data={"id": subscription.pk})
        set_actor(subscription, actor, user_id=user_id)
        subscription.delete()
