"""Single sign-on for the admin: OpenID Connect (authorization code flow, PKCE) with
mozilla-django-oidc, and the switch that turns password login off.

Who a signed-in operator is: the user whose username is the identity provider's
``OIDC_USERNAME_CLAIM`` (``preferred_username``); created on first sign-in as
staff without a password. A local account that has a password is never taken
over by a sign-in with the same name (refused: the provider's user could be
someone else). What the operator may do: the Django groups of ``OIDC_GROUP_MAP``
follow the provider's group claim at EVERY sign-in (added and removed), and the
roles and permissions of those groups (tenants/roles.py) do the rest.

The provider is an operator's configuration, not input from a caller, so its
endpoints are called by the library directly (not through core/outbound.py's
SSRF policy), with ``OIDC_TIMEOUT``.
"""
from __future__ import annotations

import logging

import requests
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.http import Http404, HttpResponseRedirect
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

logger = logging.getLogger("config_hub.sso")


_discovered: dict[str, dict] = {}


class ProviderUnreachable(Exception):
    """The provider's discovery document could not be read (the sign-in fails, the hub stays up)."""


def provider_endpoints() -> dict[str, str]:
    """The provider's endpoints: those set in the settings, the rest from the
    discovery document of ``OIDC_OP_ISSUER`` (read once per process, and only
    when a sign-in needs it: the hub starts while the provider is down)."""
    endpoints = {"authorization": settings.OIDC_OP_AUTHORIZATION_ENDPOINT, "token": settings.OIDC_OP_TOKEN_ENDPOINT,
                 "userinfo": settings.OIDC_OP_USER_ENDPOINT, "jwks": settings.OIDC_OP_JWKS_ENDPOINT}
    issuer = settings.OIDC_OP_ISSUER
    if all(endpoints.values()) or not issuer:
        return endpoints
    document = _discovered.get(issuer)
    if document is None:
        try:
            answer = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=settings.OIDC_TIMEOUT)
            answer.raise_for_status()
            document = answer.json()
        except (requests.RequestException, ValueError) as exc:
            raise ProviderUnreachable(f"{issuer}: no discovery document ({exc})") from exc
        if not isinstance(document, dict) or str(document.get("issuer", "")).rstrip("/") != issuer:
            # OpenID Connect Discovery 1.0, 4.3: the document must name the issuer it was asked of.
            raise ProviderUnreachable(f"{issuer}: the discovery document names another issuer")
        _discovered[issuer] = document
    names = {"authorization": "authorization_endpoint", "token": "token_endpoint",
             "userinfo": "userinfo_endpoint", "jwks": "jwks_uri"}
    return {key: value or str(document.get(names[key]) or "") for key, value in endpoints.items()}


class PasswordBackend(ModelBackend):
    """Django's username and password, unless ``PASSWORD_LOGIN`` is off (then no
    password signs in: neither the admin's form nor /api/v1/auth/token/).
    Permissions are answered as ever."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if not settings.PASSWORD_LOGIN:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def sso_groups_sync(*, user, claims: dict) -> tuple[list[str], list[str]]:
    """Make the user's managed groups (the values of ``OIDC_GROUP_MAP``) exactly
    those the provider's group claim maps to; groups outside the map are left
    alone. With ``OIDC_SUPERUSER_GROUPS`` set, ``is_superuser`` follows the claim
    too. Returns (added, removed) group names."""
    raw = claims.get(settings.OIDC_GROUPS_CLAIM) or []
    provider_groups = {raw} if isinstance(raw, str) else {str(g) for g in raw}
    mapping = settings.OIDC_GROUP_MAP
    wanted = {mapping[g] for g in provider_groups if g in mapping}
    managed = set(mapping.values())
    with transaction.atomic():
        held = set(user.groups.filter(name__in=managed).values_list("name", flat=True))
        removed = sorted(held - wanted)
        added = sorted(wanted - held)
        if removed:
            user.groups.remove(*Group.objects.filter(name__in=removed))
        for name in added:
            user.groups.add(Group.objects.get_or_create(name=name)[0])
        user.is_staff = True
        if settings.OIDC_SUPERUSER_GROUPS:
            user.is_superuser = bool(provider_groups & set(settings.OIDC_SUPERUSER_GROUPS))
        email = claims.get("email")
        if isinstance(email, str) and email:
            user.email = email
        user.save(update_fields=["is_staff", "is_superuser", "email"])
    return added, removed


class OidcBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend, matching users by username, never a password account."""

    def authenticate(self, request, **kwargs):
        if not settings.OIDC_ENABLED or "password" in kwargs:
            return None
        try:
            endpoints = provider_endpoints()
        except ProviderUnreachable as exc:
            logger.warning("sso sign-in failed: %s", exc)
            return None
        self.OIDC_OP_TOKEN_ENDPOINT, self.OIDC_OP_USER_ENDPOINT = endpoints["token"], endpoints["userinfo"]
        self.OIDC_OP_JWKS_ENDPOINT = endpoints["jwks"]
        return super().authenticate(request, **kwargs)

    def verify_claims(self, claims) -> bool:
        username = claims.get(settings.OIDC_USERNAME_CLAIM)
        return isinstance(username, str) and 0 < len(username) <= 150

    def filter_users_by_claims(self, claims):
        return self.UserModel.objects.filter(username=claims[settings.OIDC_USERNAME_CLAIM])

    def create_user(self, claims):
        user = self.UserModel.objects.create_user(claims[settings.OIDC_USERNAME_CLAIM], email=claims.get("email") or "",
                                                  is_staff=True)  # no password: an unusable one
        return self.update_user(user, claims)

    def update_user(self, user, claims):
        if user.has_usable_password():
            raise SuspiciousOperation(f"single sign-on as '{user.username}' refused: a local account with a password has that name")
        added, removed = sso_groups_sync(user=user, claims=claims)
        logger.info("sso sign-in %s: groups added %s, removed %s", user.username, added, removed)
        return user


class SsoStartView(OIDCAuthenticationRequestView):
    """/oidc/authenticate/: off (404) unless single sign-on is configured."""

    def get(self, request):
        if not settings.OIDC_ENABLED:
            raise Http404("single sign-on is not configured")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider_endpoints()["authorization"]
        except ProviderUnreachable as exc:
            logger.warning("sso sign-in failed: %s", exc)
            return HttpResponseRedirect(settings.LOGIN_REDIRECT_URL_FAILURE)
        return super().get(request)


class SsoCallbackView(OIDCAuthenticationCallbackView):
    """/oidc/callback/: off (404) unless single sign-on is configured."""

    def get(self, request):
        if not settings.OIDC_ENABLED:
            raise Http404("single sign-on is not configured")
        return super().get(request)
