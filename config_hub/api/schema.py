"""OpenAPI: how our three credentials are described, unique operation ids, and the
error answers every operation can give (documented once, here, for all of them)."""
from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as _AutoSchema
from rest_framework_simplejwt.views import TokenViewBase

from core.api import docs
from core.api.principal import API_KEY_PREFIX
from core.api.strict import StrictSerializer


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "core.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": f"`ApiKey {API_KEY_PREFIX}...` (or `Bearer {API_KEY_PREFIX}...`), a service key from the admin"}


class BareApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "core.api.authentication.BareApiKeyAuthentication"
    name = "UnleashApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": f"`{API_KEY_PREFIX}...` alone, as Unleash SDKs send it (the /unleash/ routes only)"}


class OperatorJWTScheme(OpenApiAuthenticationExtension):
    target_class = "core.api.authentication.JWTAuthentication"
    name = "OperatorJWT"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "an operator's token from POST /api/v1/auth/token/"}


class ServiceTokenScheme(OpenApiAuthenticationExtension):
    target_class = "registry.api.authentication.ServiceTokenAuthentication"
    name = "ServiceToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "A service token: HS256 with a secret of the instance's tenant (kid header optional; SERVICE_JWT_SECRET for the default tenant only), claim service_id"}


class OfrepStreamTokenScheme(OpenApiAuthenticationExtension):
    target_class = "flags.api.views.ofrep_stream.StreamTokenAuthentication"
    name = "OfrepStreamToken"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "query", "name": "token",
                "description": "the token of an OFREP bulk answer's eventStreams[].url (GET /ofrep/v1/stream only)"}


# Every answer an operation can give besides its own (views document those, with
# docs.errors() for 409/412 and OFREP's own shapes): see ``_error_statuses``.
_BODY_METHODS = {"POST", "PUT", "PATCH"}
# Routes whose writes pass the write gate (tenants.guard): in a protected
# environment they answer 409 change_request_required (docs/change-requests.md).
_GATED_PREFIXES = ("/api/v1/config/", "/api/v1/configs/", "/api/v1/schemas/", "/api/v1/feature-flags/", "/config/tenants/")


class AutoSchema(_AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None

        responses = operation.setdefault("responses", {})
        for status in self._error_statuses(operation):
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(docs.error(status), str(status))
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _error_statuses(self, operation) -> list[int]:
        """The common error answers of this operation.
        400: a body, or any parameter (NUL characters in a URL are refused for every
        route); 401/403: authenticated routes (403: the scope); 404: path
        parameters, or any authenticated route (a tenant the caller is not bound to
        in X-Tenant-ID); 413 and 415: bodies; 429: throttled callers; 503: every
        route touches the database.
        """

        has_body = self.method in _BODY_METHODS
        authenticated = bool(self.view.get_permissions()) and bool(self.view.get_authenticators())
        statuses = [503]
        if has_body or operation.get("parameters"):
            statuses.append(400)
        if authenticated or isinstance(self.view, TokenViewBase):
            statuses.append(401)
        if authenticated:
            statuses += [403, 404]
            if self.view.get_throttles():
                statuses.append(429)
        elif "{" in self.path:
            statuses.append(404)
        if has_body:
            statuses += [413, 415]
        if (authenticated and self.method in _BODY_METHODS | {"DELETE"} and self.path.startswith(_GATED_PREFIXES)
                and "evaluate" not in self.path):
            statuses.append(409)
        return statuses

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)

        if direction == "request" and isinstance(serializer, StrictSerializer):
            schema["additionalProperties"] = False  # unknown fields are refused (config_hub/api/strict.py)
        return schema

    def get_operation_id(self):
        operation_id = super().get_operation_id()
        # A collection and its items are both GETs; name the collection "list".
        if self.method == "GET" and not self.path.rstrip("/").endswith("}") and operation_id.endswith("_retrieve"):
            operation_id = operation_id[: -len("_retrieve")] + "_list"
        if self.method == "POST" and self.path.rstrip("/").endswith("}") and operation_id.endswith("_create"):
            operation_id = operation_id[: -len("_create")] + "_item_create"
        return operation_id
