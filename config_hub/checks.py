"""System checks of the hub's own settings, shown by ``manage.py check --deploy``."""
from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register

from .settings import signing


@register(Tags.security, deploy=True)
def signing_secrets_check(app_configs=None, **kwargs) -> list[Error]:
    """Each signing secret set on its own, none equal to another (production
    refuses to start otherwise; in development this says what would stop it)."""
    values = {
        "SECRET_KEY": settings.SECRET_KEY,
        "JWT_SIGNING_KEY": settings.SIMPLE_JWT.get("SIGNING_KEY"),
        "SERVICE_JWT_SECRET": settings.SERVICE_JWT_SECRET,
    }
    optional = () if getattr(settings, "SERVICE_JWT_SHARED_SECRET_TENANT", "default") else ("SERVICE_JWT_SECRET",)
    return [
        Error(message, hint="See docs/settings.md (Mode, secrets, hosts).", id=check_id)
        for check_id, message in signing.problems(values, derived=getattr(settings, "DERIVED_SECRETS", ()), optional=optional)
    ]
