"""Typed readers for environment variables that fail loudly on a bad value.

Modelled on healthchecks' ``envbool``: a typo in production configuration must stop
the process at start-up, not silently fall back to a default. Every reader also
accepts ``NAME_FILE`` (a path whose content is the value), so secrets can come from
Docker/Kubernetes secret files instead of the environment.
"""
from __future__ import annotations

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

_env = environ.Env()
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    """Return ``name`` from the environment, or the content of ``name_FILE``."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from exc
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = env_str(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false)")


def env_int(name: str, default: int) -> int:
    raw = env_str(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from exc


def env_float(name: str, default: float) -> float:
    raw = env_str(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from exc


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = env_str(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_db(name: str, default: str) -> dict:
    """Parse a database URL (``postgres://...``, ``sqlite:///path``) with django-environ."""
    raw = env_str(name) or default
    try:
        return _env.db_url_config(raw)
    except Exception as exc:  # environ raises several types for a malformed URL
        raise ImproperlyConfigured(f"{name} is not a valid database URL: {exc}") from exc


def env_pairs(name: str) -> dict[str, str]:
    """``a=b,c=d`` as ``{"a": "b", "c": "d"}`` (OIDC_GROUP_MAP); an item without ``=`` stops the start."""
    pairs: dict[str, str] = {}
    for item in env_list(name):
        left, sep, right = item.partition("=")
        if not sep or not left.strip() or not right.strip():
            raise ImproperlyConfigured(f"{name}: {item!r} is not 'name=value'")
        pairs[left.strip()] = right.strip()
    return pairs
