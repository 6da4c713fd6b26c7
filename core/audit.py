"""Who did it: the actor of every historical row, for operators, keys and services.

django-simple-history records ``history_user`` for Django users only. Callers
with an API key or a service token are no users, so each historical model also
carries ``history_actor`` (``user:alice``, ``apikey:deployer``, ``system:beat``).
Services set it with :func:`set_actor` on the instance before saving.
"""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import models
from django.dispatch import receiver
from simple_history.models import HistoricalRecords
from simple_history.signals import pre_create_historical_record


class ActorHistory(models.Model):
    history_actor = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        abstract = True


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
