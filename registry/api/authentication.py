"""Service tokens: HS256 JWTs with a ``service_id`` claim, signed with a
secret of the tenant that instance belongs to.

A Bearer token that is a JWT with a ``service_id`` claim (and no simplejwt
``token_type``) is a service token: its signature must verify, else 401. Any
other Bearer token falls through to the operators' JWT authentication.

Which secret: the token's ``service_id`` names an instance, so a tenant; the token
must be signed with one of that tenant's active secrets (``registry.ServiceTokenSecret``;
the one its ``kid`` header names, else any of them), or, for the one tenant
``SERVICE_JWT_SHARED_SECRET_TENANT`` names (``default``), with the shared
``SERVICE_JWT_SECRET``. So a token signed with tenant A's secret never acts on an
instance of tenant B (401).
"""
from __future__ import annotations

import time
from typing import Any

import jwt
from django.conf import settings
from rest_framework import authentication, exceptions

from core.api.principal import API_KEY_PREFIX, Principal, PrincipalUser
from core.cache import LocalCache
from registry.selectors import instance_owner
from registry.tokens import service_token_candidates, service_token_secret_accepted

SERVICE_SCOPES = frozenset({"registry:read", "registry:write"})

# Verified tokens in this process: a service beats every few seconds with the
# same token, and decoding and verifying it cost more than the heartbeat's own
# work. Keyed by the whole token (signature included), so only a token that
# verified can hit; each hit still checks ``exp``, that the secret that verified
# it is still accepted for the tenant (revocation) and that its instance still
# belongs to that tenant.
_verified = LocalCache("registry.verified-tokens", ttl=300.0, max_items=20_000)
_INVALID = "Invalid or expired service token"


def _service_id(claims: dict[str, Any]) -> int:
    """The ``service_id`` claim as an instance id: an integer or a string of ASCII
    digits, at most 18 of them (a bigint; ``str()``/``int()`` of a 5,000-digit
    number raises), else 401."""
    value = claims.get("service_id")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise exceptions.AuthenticationFailed("service_id must be an instance id")
    text = value if isinstance(value, str) else (str(value) if 0 <= value < 10**18 else "")
    if not (0 < len(text) <= 18 and text.isascii() and text.isdigit()):
        raise exceptions.AuthenticationFailed("service_id must be an instance id")
    return int(text)


def _expired(claims: dict[str, Any]) -> bool:
    exp = claims.get("exp")
    return exp is not None and not isinstance(exp, bool) and isinstance(exp, (int, float)) and exp <= time.time()


def _bearer_token(request) -> str | None:
    """The Bearer token of a request that may be a service token (not an API key)."""
    parts = request.META.get("HTTP_AUTHORIZATION", "").split(None, 1)
    if len(parts) != 2 or parts[0].lower() != "bearer" or parts[1].startswith(API_KEY_PREFIX):
        return None
    return parts[1].strip()


def _principal(token: str, hit: tuple[dict, int, Any]) -> Principal:
    """The principal of a verified token (``_verified``'s entry): 401 when it has
    expired, its secret is no longer accepted, or its instance is gone or moved."""
    claims, tenant_id, reference = hit
    if _expired(claims) or not service_token_secret_accepted(tenant_id=tenant_id, reference=reference):
        _verified.delete(token)
        raise exceptions.AuthenticationFailed(_INVALID)
    service_id = _service_id(claims)
    owner = instance_owner(instance_id=service_id)
    if owner is None or owner[0] != tenant_id:
        raise exceptions.AuthenticationFailed("service_id names no registered instance")
    return Principal(kind="service", ident=str(service_id), label=str(service_id), tenant_id=tenant_id,
                     scopes=SERVICE_SCOPES)


def cached_service_principal(request) -> Principal | None:
    """For the lean heartbeat (``core.api.lean``'s ``credential``): the principal of
    a service token this process verified already, with every check of a cache
    hit in :class:`ServiceTokenAuthentication`; None for a token not verified yet
    (or not a service token): the DRF view verifies it. 401 cases raise."""
    token = _bearer_token(request)
    hit = None if token is None else _verified.get(token)
    return None if hit is None else _principal(token, hit)


class ServiceTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        token = _bearer_token(request)
        if token is None:
            return None

        hit = _verified.get(token)
        if hit is None:
            hit = self._verify(token)
            if hit is None:
                return None
            _verified.set(token, hit)
        principal = _principal(token, hit)
        return PrincipalUser(principal), principal

    @staticmethod
    def _verify(token: str) -> tuple[dict, int, Any] | None:
        """(verified claims, tenant id, the secret's reference) of a service token;
        None when the token is not one (another Bearer token); 401 when it is one
        that does not verify with a secret of its instance's tenant."""

        try:
            parsed = jwt.decode_complete(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        unverified, header = parsed["payload"], parsed["header"]
        if not isinstance(unverified, dict) or "service_id" not in unverified or "token_type" in unverified:
            return None
        if header.get("alg") != "HS256":
            raise exceptions.AuthenticationFailed("Service tokens are HS256")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise exceptions.AuthenticationFailed(_INVALID)
        owner = instance_owner(instance_id=_service_id(unverified))
        if owner is None:
            raise exceptions.AuthenticationFailed("service_id names no registered instance")
        options = {"require": ["exp"]} if settings.SERVICE_JWT_REQUIRE_EXP else {}
        for reference, secret in service_token_candidates(tenant_id=owner[0], kid=kid):
            try:
                claims = jwt.decode(token, secret, algorithms=["HS256"], options=options)
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as exc:
                raise exceptions.AuthenticationFailed(_INVALID) from exc
            return claims, owner[0], reference
        raise exceptions.AuthenticationFailed(_INVALID)
