"""Rolling an environment back to a release: one change request restoring each value.

:func:`release_rollback_changes` is the whole rule (a pure function of the release
and the environment's current content, tested on its own); :func:`release_rollback`
hands its list to the changes app. The change format is API.md's ("Change requests
and releases"): ``config.set``, ``config.delete`` (both in the request's tenant and
environment, for ``service_name`` or "" = every service) and ``flag.set`` (the
fields of the flag route's PATCH).

What is restored, in order:

1. The environment's own entries (scopes tenant+environment and
   tenant+environment+service, the ones a change request of this tenant and
   environment writes) become the release's: entries made since are deleted,
   changed or deleted ones set back (secrets with their value, as secrets).
2. Broader scopes (the tenant's entries for every environment, global entries,
   schema defaults) are not the environment's to write, and may have moved since.
   For each view (the tenant first, then each service), a key that would still
   resolve differently from the release gets an override in the environment's
   scope (tenant+environment for the tenant's view, +service for a service's),
   so every value resolves as in the release. A key that did not resolve at all
   in the release but does now only through a broader scope cannot be removed by
   a change to this environment; it is left as it is (the compare shows it).
3. Flags: a flag's state in the environment (``is_enabled``, ``strategies``) and
   its flag-wide fields (``variants``, ``dependencies``, ``kind``) where they
   differ; a flag made since is disabled with no strategies (flags are the
   tenant's, for every environment: a rollback of one environment deletes none).
   Segments are not restored (no change type writes them).
"""
from __future__ import annotations

from typing import Any

from changes.services.change_requests import change_request_create
from changes.signals import change_request_applied
from core.errors import Conflict

from .models import Release
from .services import release_after_change_request
from .snapshot import content_view, entries_resolve, same_value, snapshot_build

ENVIRONMENT_SCOPES = ("tenant+environment", "tenant+environment+service")
_FLAG_STATE = (("enabled", "is_enabled"), ("strategies", "strategies"))
_FLAG_WIDE = ("variants", "dependencies", "kind")


def _environment_layer(entries: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["service_name"], e["key"]): e for e in entries if e["scope"] in ENVIRONMENT_SCOPES}


def _set(release: Release, service: str, key: str, item: dict[str, Any]) -> dict[str, Any]:
    secret = bool(item.get("is_secret"))
    return {"type": "config.set", "key": key, "service_name": service,
            "value": release.secrets[item["secret"]] if secret else item["value"], "is_secret": secret}


def release_rollback_changes(release: Release, *, current_state: dict[str, Any]) -> list[dict[str, Any]]:
    """The changes that bring an environment whose content is ``current_state``
    (``snapshot_build(...).content``) back to ``release`` (see the module docstring)."""
    changes: list[dict[str, Any]] = []
    target = _environment_layer(release.content["entries"])
    current = _environment_layer(current_state["entries"])
    for service, key in sorted(current.keys() - target.keys()):
        changes.append({"type": "config.delete", "key": key, "service_name": service})
    for (service, key), entry in sorted(target.items()):
        if not same_value(entry, current.get((service, key))):
            changes.append(_set(release, service, key, entry))

    # 2. Overrides where a broader scope moved since.
    broader = [e for e in current_state["entries"] if e["scope"] not in ENVIRONMENT_SCOPES]
    layer = dict(target)
    views = sorted((release.content["views"].keys() | current_state["views"].keys()) - {""})
    for service in ["", *views]:
        want = content_view(release.content, service)
        got = entries_resolve(broader + list(layer.values()), current_state["schemas"], service)
        for key, item in want.items():
            if same_value(item, got.get(key)):
                continue
            scope = "tenant+environment+service" if service else "tenant+environment"
            layer[(service, key)] = {**item, "scope": scope, "service_name": service, "key": key}
            changes.append(_set(release, service, key, item))

    # 3. Flags.
    wanted, present = release.content["flags"], current_state["flags"]
    for name in sorted(wanted.keys() | present.keys()):
        want, have = wanted.get(name), present.get(name)
        if want is None:
            if have["enabled"] or have["strategies"]:
                changes.append({"type": "flag.set", "name": name, "is_enabled": False, "strategies": []})
            continue
        change: dict[str, Any] = {}
        for field, patch_field in _FLAG_STATE:
            if have is None or have[field] != want[field]:
                change[patch_field] = want[field]
        for field in _FLAG_WIDE:
            if have is None or have[field] != want[field]:
                change[field] = want[field]
        if change:
            changes.append({"type": "flag.set", "name": name, **change})
    return changes


# --- the changes app: a rollback is a change request; an applied one makes a release ------------


def release_rollback(*, release: Release, actor: str, user_id: int | None = None, title: str | None = None,
                     apply_at=None):
    """Open one change request that rolls the release's environment back to it."""
    current = snapshot_build(tenant=release.tenant, environment=release.environment).content
    changes = release_rollback_changes(release, current_state=current)
    if not changes:
        raise Conflict(f"{release.environment.slug} already resolves every value as release '{release.name}'",
                       code="nothing_to_roll_back")
    return change_request_create(tenant=release.tenant, environment=release.environment,
                  title=title or f"Roll {release.environment.slug} back to release '{release.name}'",
                  changes=changes, actor=actor, user_id=user_id, apply_at=apply_at)


def _after_change_request_applied(sender=None, *, change_request=None, **kwargs) -> None:
    release_after_change_request(tenant=change_request.tenant, environment=change_request.environment,
                                 change_request_id=change_request.pk,
                                 actor=kwargs.get("actor") or f"change_request:{change_request.pk}")


def change_request_hook_connect() -> None:
    """Make a release after every applied change request (called from ``ReleasesConfig.ready``)."""
    change_request_applied.connect(_after_change_request_applied, dispatch_uid="releases.after-change-request")
