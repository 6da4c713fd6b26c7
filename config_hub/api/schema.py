"""OpenAPI: how our three credentials are described, and unique operation ids."""
from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as _AutoSchema


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "config_hub.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`ApiKey chk_...` (or `Bearer chk_...`), a service key from the admin"}


class OperatorJWTScheme(OpenApiAuthenticationExtension):
    target_class = "config_hub.api.authentication.JWTAuthentication"
    name = "OperatorJWT"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "an operator's token from POST /api/v1/auth/token/"}


class ServiceTokenScheme(OpenApiAuthenticationExtension):
    target_class = "registry.api.authentication.ServiceTokenAuthentication"
    name = "ServiceToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "seed 004: HS256 with SERVICE_JWT_SECRET, claim service_id"}


class AutoSchema(_AutoSchema):
    def get_operation_id(self):
        operation_id = super().get_operation_id()
        # A collection and its items are both GETs; name the collection "list".
        if self.method == "GET" and not self.path.rstrip("/").endswith("}") and operation_id.endswith("_retrieve"):
            operation_id = operation_id[: -len("_retrieve")] + "_list"
        if self.method == "POST" and self.path.rstrip("/").endswith("}") and operation_id.endswith("_create"):
            operation_id = operation_id[: -len("_create")] + "_item_create"
        return operation_id
