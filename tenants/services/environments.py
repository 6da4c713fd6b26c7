"""Environment writes: create, rename, delete (the built-in ones stay)."""
from __future__ import annotations

from django.core.cache import cache
from django.db import models, transaction

from core import invalidation
from core.audit import set_actor
from core.errors import Conflict, NotFound, ValidationFailed
from events.services import event_record

from ..models import Environment
from .common import full_clean

BUILTIN_ENVIRONMENTS = ("development", "staging", "production")


def environment_create(*, slug: str, name: str = "", actor: str) -> Environment:
    env = Environment(slug=slug, name=name or slug)
    full_clean(env)
    with transaction.atomic():
        if Environment.objects.filter(slug=slug).exists():
            raise Conflict(f"environment '{slug}' already exists")
        set_actor(env, actor)
        env.save()
        event_record(tenant=None, resource_type="environment", action="created", actor=actor, key=slug)
    cache.delete(f"env:{slug}")

    invalidation.invalidate(f"env:{slug}")  # processes holding a pk of an older row with this slug
    return env


def environment_update(*, environment: Environment, name: str, actor: str, user_id: int | None = None) -> Environment:
    """Rename an environment (its slug never changes: keys, configs and clients name it)."""
    environment.name = name or environment.slug
    full_clean(environment)
    with transaction.atomic():
        set_actor(environment, actor, user_id=user_id)
        environment.save()
        event_record(tenant=None, resource_type="environment", action="updated", actor=actor, key=environment.slug,
                     data={"name": environment.name})
    return environment


def environment_delete(*, environment: Environment, actor: str, user_id: int | None = None) -> None:
    """Delete an environment that nothing uses any more.

    Refused (``ValidationFailed``, nothing changed):
    - for the built-in ``development``, ``staging`` and ``production``: migrations,
      seeds and clients assume they exist (as the built-in tenant ``default``);
    - while config entries, flag states, flags (as their default environment) or
      API keys (as their OFREP environment) use it. Deleting would otherwise drop
      flag states (cascade) and unbind keys without any event of theirs: the
      operator deletes or moves those first, each through its own service.
    Otherwise: an ``environment.deleted`` event, the audit actor, and the cached
    slug -> pk dropped everywhere (now and after commit).
    """
    slug = environment.slug
    if slug in BUILTIN_ENVIRONMENTS:
        raise ValidationFailed(f"the built-in environment '{slug}' cannot be deleted", code="environment_builtin")
    with transaction.atomic():
        # Locks out concurrent inserts that reference it (their FK check needs a key-share lock).
        if not Environment.objects.select_for_update().filter(pk=environment.pk).exists():
            raise NotFound(f"environment '{slug}' not found")
        uses = {what: n for what, n in environment_uses(environment).items() if n}
        if uses:
            listed = ", ".join(f"{n} {what}" for what, n in uses.items())
            raise ValidationFailed(
                f"environment '{slug}' is still used by {listed}: delete or move them first",
                details=uses, code="environment_in_use",
            )
        event_record(tenant=None, resource_type="environment", action="deleted", actor=actor, key=slug)
        set_actor(environment, actor, user_id=user_id)
        environment.delete()

    def forget() -> None:
        cache.delete(f"env:{slug}")
        invalidation.invalidate(f"env:{slug}")

    forget()
    transaction.on_commit(forget)


def environment_uses(environment: Environment) -> dict[str, int]:
    """How many rows of each model point at the environment, by what they are
    ("config entries", "flags (default environment)"). Read from the models'
    relations, so an app that adds a reference to environments (flags do) is
    counted without this app knowing it; history rows (no constraint, kept on
    purpose) are not uses."""
    uses: dict[str, int] = {}
    for relation in Environment._meta.get_fields(include_hidden=True):
        if not (relation.auto_created and not relation.concrete) or relation.on_delete is models.DO_NOTHING:
            continue
        model, field = relation.related_model, relation.field
        what = str(model._meta.verbose_name_plural)
        if field.name != "environment":
            what += f" ({field.verbose_name})"
        uses[what] = model._default_manager.filter(**{field.name: environment}).count()
    return dict(sorted(uses.items(), key=lambda item: item[0].lower()))
