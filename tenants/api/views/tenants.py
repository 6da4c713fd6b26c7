"""Tenant routes: ``/api/v1/tenants/`` (platform credentials with ``admin``)."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.conditional import conditional_response
from core.api.strict import validated_body
from core.errors import NotFound
from tenants.api import docs
from tenants.models import Tenant
from tenants.services.tenants import tenant_create, tenant_delete, tenant_update

from .. import serializers as s
from .common import require_platform


class TenantListView(APIView):
    required_scopes = {"GET": "admin", "POST": "admin"}

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        require_platform(request)

    @extend_schema(responses=docs.conditional(docs.TenantOutSerializer(many=True)))
    def get(self, request):
        return conditional_response(request, [s.tenant_out(t) for t in Tenant.objects.order_by("slug")])

    @extend_schema(request=s.TenantSerializer, responses={201: docs.TenantOutSerializer, **docs.errors(409)})
    def post(self, request):
        data = validated_body(s.TenantSerializer, request.data)
        tenant = tenant_create(slug=data["slug"], name=data.get("name", ""), is_active=data["is_active"], actor=request.auth.actor)
        return Response(s.tenant_out(tenant), status=status.HTTP_201_CREATED)


class TenantDetailView(APIView):
    required_scopes = {"GET": "admin", "PATCH": "admin", "DELETE": "admin"}

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        require_platform(request)

    def _get(self, slug: str) -> Tenant:
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise NotFound(f"tenant '{slug}' not found")
        return tenant

    @extend_schema(responses=docs.conditional(docs.TenantOutSerializer))
    def get(self, request, slug: str):
        return conditional_response(request, s.tenant_out(self._get(slug)))

    @extend_schema(request=s.TenantPatchSerializer, responses={200: docs.TenantOutSerializer})
    def patch(self, request, slug: str):
        data = validated_body(s.TenantPatchSerializer, request.data)
        tenant = tenant_update(tenant=self._get(slug), actor=request.auth.actor, **data)
        return Response(s.tenant_out(tenant))

    @extend_schema(responses={204: docs.NO_CONTENT})
    def delete(self, request, slug: str):
        tenant_delete(tenant=self._get(slug), actor=request.auth.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)
