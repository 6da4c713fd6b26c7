"""The per-tenant config routes under ``/config/``: one key of a tenant
(read, create or update) and one key across every tenant."""
from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.conditional import conditional_response, expected_version, version_etag
from core.api.strict import validated_body
from core.api.tenancy import request_tenant
from core.errors import NotFound, ValidationFailed
from tenants import selectors
from tenants.api import docs
from tenants.models import Tenant
from tenants.services.configs import config_set

from .. import serializers as s
from .common import ENV_PARAM, SVC_PARAM, entry_etag, env_or_none, require_platform, reveal_allowed, timed


def _valid_path_key(key: str) -> None:
    """A key named in a URL path gets the same check as one in a body: 400, never 500."""

    try:
        s.key_validator(key)
    except DjangoValidationError as exc:
        raise ValidationFailed(exc.messages[0], details={"config_key": exc.messages}) from exc


class TenantConfigView(APIView):
    """``GET/PUT /config/tenants/{tenant_id}/configs/{config_key}``: one key of one tenant, by slug."""

    query_parameters = {"GET": frozenset({"environment", "service_name"})}
    read_scope = "configs:read"
    write_scope = "configs:write"

    @extend_schema(parameters=[ENV_PARAM, SVC_PARAM], responses=docs.conditional(docs.TenantConfigSerializer))
    @timed("tenant_config")
    def get(self, request, tenant_id: str, config_key: str):
        tenant = request_tenant(request, tenant_id)
        environment = request.query_params.get("environment") or None
        service_name = request.query_params.get("service_name") or ""
        data = selectors.config_resolve_cached(tenant=tenant, key=config_key, environment=environment, service_name=service_name)
        if not data["found"]:
            raise NotFound(f"config '{config_key}' not found for tenant '{tenant_id}'")
        value, masked = selectors.resolved_value(data, reveal=reveal_allowed(request))
        body = {"config_key": config_key, "config_value": value, "version": data["version"], "source": data["source"]}
        if masked:
            body["masked"] = True
        etag = version_etag(data["entry_id"], data["version"], masked=masked) if data["entry_id"] else None
        return conditional_response(request, body, etag=etag)

    @extend_schema(request=s.TenantConfigPutSerializer,
                   responses={200: docs.TenantConfigWrittenSerializer, 201: docs.TenantConfigWrittenSerializer,
                              **docs.errors(409, 412)})
    def put(self, request, tenant_id: str, config_key: str):
        tenant = request_tenant(request, tenant_id)
        data = validated_body(s.TenantConfigPutSerializer, request.data)
        if "config_value" not in request.data:
            raise ValidationError({"config_value": ["This field is required."]})
        _valid_path_key(config_key)
        entry, created = config_set(
            tenant=tenant,
            key=config_key,
            value=data["config_value"],
            environment=env_or_none(data.get("environment")),
            service_name=data.get("service_name") or "",
            expected_version=expected_version(request, data.get("version")),
            actor=request.auth.actor,
            user_id=request.auth.user_id,
        )
        masked = entry.is_secret and not reveal_allowed(request)
        body = {
            "config_key": config_key,
            "config_value": None if masked else entry.plain_value,
            "version": entry.version,
            "source": entry.scope_label,
            "id": entry.pk,
        }
        response = Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
        response["ETag"] = entry_etag(entry)
        return response


class AllTenantsConfigView(APIView):
    """``GET /config/configs/{config_key}/all-tenants`` (``admin`` scope).

    Lists every active tenant for which the key resolves (tenant scope, global or
    the schema default); tenants where nothing resolves are left out.
    """

    required_scopes = {"GET": "admin"}

    @extend_schema(responses=docs.conditional(docs.AllTenantsRowSerializer(many=True)))
    def get(self, request, config_key: str):
        require_platform(request)
        reveal = reveal_allowed(request)
        out = []
        for tenant in Tenant.objects.filter(is_active=True).order_by("slug"):
            data = selectors.config_resolve_cached(tenant=tenant, key=config_key, environment=None, service_name="")
            if data["found"]:
                value, masked = selectors.resolved_value(data, reveal=reveal)
                row = {"tenant_id": tenant.slug, "config_value": value, "source": data["source"], "version": data["version"]}
                if masked:
                    row["masked"] = True
                out.append(row)
        return conditional_response(request, out)
