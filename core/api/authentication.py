"""DRF authentication: service API keys, operators' JWTs.

API keys (``Authorization: ApiKey chk_...`` or ``Bearer chk_...``) are checked
without a database query on the hot path: the key's principal is cached under
the SHA-256 of the key for ``API_KEY_CACHE_TTL`` seconds, and revoking a key
deletes that cache entry, so revocation takes effect on the next request.
"""
from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import authentication, exceptions
from rest_framework_simplejwt.authentication import JWTAuthentication as _SimpleJWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken

from core import directory

from .principal import ALL_SCOPES, API_KEY_PREFIX, Principal, PrincipalUser
from .throttling import auth_failures_wait, client_address


def _header(request) -> tuple[str, str] | None:
    raw = request.META.get("HTTP_AUTHORIZATION", "")
    if not raw:
        return None
    parts = raw.split(None, 1)
    if len(parts) != 2:
        raise exceptions.AuthenticationFailed("Malformed Authorization header")
    return parts[0].lower(), parts[1].strip()


def api_key_token(request) -> str | None:
    """The API key a request's Authorization header carries: ``ApiKey <key>``, or
    ``Bearer <key>`` for a key with the ``chk_`` prefix (the static-token clients);
    None for no header or another credential; AuthenticationFailed (401) for a
    malformed header. The lean routes (``core.api.lean``) read the key with it too."""
    header = _header(request)
    if header is None:
        return None
    kind, token = header
    if kind == "apikey" or (kind == "bearer" and token.startswith(API_KEY_PREFIX)):
        return token
    return None


def api_key_authenticate(request, token: str) -> Principal:
    """The principal of an API key, or AuthenticationFailed (401), or Throttled
    (429 with Retry-After) for a client address past API_AUTH_FAILURE_RATE
    failures. A malformed key costs no query; a cached key none either; an
    uncached one costs a query unless its address is over the limit."""
    address = client_address(request)
    principal = directory.api_key_principal(raw_key=token, allow_query=False)
    if principal is directory.UNCHECKED:
        wait = auth_failures_wait(address)
        if wait is not None:
            raise exceptions.Throttled(wait, detail="Too many failed authentications from this address")
        principal = directory.api_key_principal(raw_key=token)
    if principal is None:
        wait = auth_failures_wait(address, record=True)
        if wait is not None:
            raise exceptions.Throttled(wait, detail="Too many failed authentications from this address")
        raise exceptions.AuthenticationFailed("Invalid, expired or revoked API key")
    return principal


class BareApiKeyAuthentication(authentication.BaseAuthentication):
    """An API key alone in ``Authorization`` (``chk_...``, no scheme), as Unleash
    SDKs send their token. Only the views that list it accept it (the Unleash
    client API); everywhere else a header without a scheme stays a 401."""

    def authenticate(self, request):
        raw = request.META.get("HTTP_AUTHORIZATION", "").strip()
        if not raw.startswith(API_KEY_PREFIX) or len(raw.split()) != 1:
            return None
        principal = api_key_authenticate(request, raw)
        return PrincipalUser(principal), principal

    def authenticate_header(self, request) -> str:
        return 'ApiKey realm="config-hub"'


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """An API key as ``ApiKey <key>``, or as ``Bearer <key>`` (the static-token clients)."""

    def authenticate(self, request):
        token = api_key_token(request)
        if token is None:
            return None
        principal = api_key_authenticate(request, token)
        return PrincipalUser(principal), principal

    def authenticate_header(self, request) -> str:
        return 'ApiKey realm="config-hub"'


# An operator's scopes come from Django's model permissions, so the admin's
# groups and permissions govern the API exactly as they govern the admin.
SCOPE_PERMISSIONS = {
    "configs:read": "tenants.view_configentry",
    "configs:write": "tenants.change_configentry",
    "secrets:read": "tenants.reveal_secret",
    "flags:read": "flags.view_flag",
    "flags:write": "flags.change_flag",
    "registry:read": "registry.view_instance",
    "registry:write": "registry.change_instance",
    "events:read": "events.view_event",
    "changes:approve": "changes.approve_changerequest",
}


def user_principal(user) -> Principal:
    """The scopes of an operator: superusers have all of them (``admin`` included);
    anyone else has a scope only through the model permission that grants it
    (SCOPE_PERMISSIONS), a write permission implying the matching read. A user
    with no permission reaches nothing (403), whatever ``is_staff`` says."""
    if user.is_superuser:
        scopes = ALL_SCOPES
    else:
        granted = user.get_all_permissions()
        scopes = {scope for scope, perm in SCOPE_PERMISSIONS.items() if perm in granted}
        scopes |= {scope.replace(":write", ":read") for scope in scopes if scope.endswith(":write")}
        scopes = frozenset(scopes)
    return Principal(
        kind="user",
        ident=str(user.pk),
        label=user.get_username(),
        tenant_id=None,
        scopes=scopes,
        user_id=user.pk,
    )


class JWTAuthentication(_SimpleJWTAuthentication):
    """simplejwt's operator tokens; ``request.auth`` becomes the operator's Principal."""

    def authenticate(self, request):
        header = _header(request)
        if header is None or header[0] != "bearer":
            return None
        try:
            result = super().authenticate(request)
        except InvalidToken as exc:
            raise exceptions.AuthenticationFailed("Invalid or expired token") from exc
        if result is None:
            return None
        user, _token = result
        return user, user_principal(user)


User = get_user_model()
