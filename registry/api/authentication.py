"""Seed 004's service tokens: HS256 JWTs signed with SERVICE_JWT_SECRET, claim ``service_id``.

A Bearer token that is a JWT with a ``service_id`` claim (and no simplejwt
``token_type``) is a service token: its signature must verify, else 401. Any
other Bearer token falls through to the operators' JWT authentication.
"""
from __future__ import annotations

import time

import jwt
from django.conf import settings
from rest_framework import authentication, exceptions

from config_hub.api.principal import Principal, PrincipalUser
from config_hub.localcache import LocalCache

SERVICE_SCOPES = frozenset({"registry:read", "registry:write"})

# Verified claims by token, in this process: a service beats every few seconds
# with the same token, and decoding and verifying it cost more than the
# heartbeat's own work. Keyed by the whole token (signature included), so only a
# token that verified can hit; ``exp`` is still checked on every request.
_verified = LocalCache(ttl=300.0, max_items=20_000)


def _is_instance_id(value) -> bool:
    """An instance id as a claim: an integer or a string of ASCII digits, at most 18
    of them (a bigint; ``int()`` of a 5,000-digit string raises)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return False
    text = value if isinstance(value, str) else (str(value) if 0 <= value < 10**18 else "")
    return 0 < len(text) <= 18 and text.isascii() and text.isdigit()


class ServiceTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        raw = request.META.get("HTTP_AUTHORIZATION", "")
        parts = raw.split(None, 1)
        if len(parts) != 2 or parts[0].lower() != "bearer" or parts[1].startswith("chk_"):
            return None
        token = parts[1].strip()
        claims = _verified.get(token)
        if claims is None:
            claims = self._verify(token)
            if claims is None:
                return None
            _verified.set(token, claims)
        elif "exp" in claims and not isinstance(claims["exp"], bool) and claims["exp"] <= time.time():
            _verified.delete(token)
            raise exceptions.AuthenticationFailed("Invalid or expired service token")
        service_id = claims.get("service_id")
        if not _is_instance_id(service_id):
            raise exceptions.AuthenticationFailed("service_id must be an instance id")
        from registry.selectors import instance_tenant

        tenant_id = instance_tenant(instance_id=int(service_id))
        if tenant_id is None:
            raise exceptions.AuthenticationFailed("service_id names no registered instance")
        principal = Principal(kind="service", ident=str(service_id), label=str(service_id), tenant_id=tenant_id,
                              scopes=SERVICE_SCOPES)
        return PrincipalUser(principal), principal

    @staticmethod
    def _verify(token: str) -> dict | None:
        """The verified claims of a service token; None when the token is not one
        (another Bearer token); 401 when it is one that does not verify."""
        try:
            parsed = jwt.decode_complete(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        unverified, header = parsed["payload"], parsed["header"]
        if not isinstance(unverified, dict) or "service_id" not in unverified or "token_type" in unverified:
            return None
        if header.get("alg") != "HS256":
            raise exceptions.AuthenticationFailed("Service tokens are HS256")
        options = {"require": ["exp"]} if settings.SERVICE_JWT_REQUIRE_EXP else {}
        try:
            return jwt.decode(token, settings.SERVICE_JWT_SECRET, algorithms=["HS256"], options=options)
        except jwt.PyJWTError as exc:
            raise exceptions.AuthenticationFailed("Invalid or expired service token") from exc
