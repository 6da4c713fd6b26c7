"""Who did it: the actor of every historical row, for operators, keys and services.

django-simple-history records ``history_user`` for Django users only. Callers
with an API key or a service token are no users, so each historical model also
carries ``history_actor`` (``user:alice``, ``apikey:deployer``, ``system:beat``).
Services set it with :func:`set_actor` on the instance before saving.

Why: an operator's change reason (the admin's "Change reason" field) is set for
the whole save with :func:`change_reason`; every historical row written meanwhile
keeps it in ``history_change_reason`` and every event gets it as ``data["reason"]``
(``events.services.event_record``), without each service taking one more argument.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.contrib.auth import get_user_model
from django.db import models
from django.dispatch import receiver
from simple_history.models import HistoricalRecords
from simple_history.signals import pre_create_historical_record


class ActorHistory(models.Model):
    history_actor = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        abstract = True


REASON_MAX = 100  # django-simple-history's history_change_reason column
_reason: ContextVar[str] = ContextVar("change_reason", default="")


@contextmanager
def change_reason(reason: str | None) -> Iterator[None]:
    """Within the block, the writes' history rows and events carry ``reason`` (stripped,
    at most 100 characters; empty: none)."""
    token = _reason.set((reason or "").strip()[:REASON_MAX])
    try:
        yield
    finally:
        _reason.reset(token)


def current_reason() -> str:
    """The reason set by :func:`change_reason` around this write ("" when none)."""
    return _reason.get()


def set_actor(instance: models.Model, actor: str, *, user_id: int | None = None, reason: str | None = None) -> None:
    """Attach the audit actor (and optionally a Django user and reason) to an instance."""
    instance._history_actor = actor  # type: ignore[attr-defined]
    if user_id is not None:

        instance._history_user = get_user_model()(pk=user_id)  # type: ignore[attr-defined]
    if reason:
        instance._change_reason = reason  # type: ignore[attr-defined]


@receiver(pre_create_historical_record)
def _fill_actor(sender, instance, history_instance, **kwargs) -> None:
    actor = getattr(instance, "_history_actor", "")
    if not actor and history_instance.history_user_id:
        actor = f"user:{history_instance.history_user}"
    history_instance.history_actor = actor or "system"
    if not history_instance.history_change_reason and current_reason():
        history_instance.history_change_reason = current_reason()


def _history_user(instance=None, request=None, **kwargs):
    """Only real Django users go into ``history_user``; keys and services are actors."""
    explicit = getattr(instance, "_history_user", None)
    if explicit is not None:
        return explicit
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "pk", None) and getattr(user, "is_authenticated", False):
        return user
    return None


def audit_history(**kwargs):
    """``HistoricalRecords`` with the hub's actor column and user rule."""

    kwargs.setdefault("bases", [ActorHistory])
    kwargs.setdefault("get_user", _history_user)
    return HistoricalRecords(**kwargs)
