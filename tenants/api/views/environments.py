"""Environment routes: ``/api/v1/environments/`` and ``/api/v1/environments/compare``."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.conditional import conditional_response
from core.api.strict import validated_body
from core.api.tenancy import request_tenant
from core.errors import ValidationFailed
from tenants.api import docs
from tenants.compare import environments_compare
from tenants.models import Environment
from tenants.selectors import environment_named
from tenants.services.environments import environment_create

from .. import serializers as s
from .common import require_platform, reveal_allowed


class EnvironmentListView(APIView):
    required_scopes = {"GET": "configs:read", "POST": "admin"}

    @extend_schema(responses=docs.conditional(docs.EnvironmentOutSerializer(many=True)))
    def get(self, request):
        return conditional_response(request, [{"slug": e.slug, "name": e.name} for e in Environment.objects.order_by("id")])

    @extend_schema(request=s.EnvironmentSerializer, responses={201: docs.EnvironmentOutSerializer, **docs.errors(409)})
    def post(self, request):
        require_platform(request)
        data = validated_body(s.EnvironmentSerializer, request.data)
        env = environment_create(slug=data["slug"], name=data.get("name", ""), actor=request.auth.actor)
        return Response({"slug": env.slug, "name": env.name}, status=status.HTTP_201_CREATED)


class EnvironmentCompareView(APIView):
    """``GET /api/v1/environments/compare?from=&to=&service=``: every key whose resolved
    value differs between two environments, for one service or (no ``service``) the
    tenant; secrets masked unless the caller may read them (``secrets:read``)."""

    query_parameters = frozenset({"from", "to", "service"})
    read_scope = "configs:read"

    @extend_schema(parameters=[OpenApiParameter("from", str, required=True, description="environment slug"),
                               OpenApiParameter("to", str, required=True, description="environment slug"),
                               OpenApiParameter("service", str, description="service name (its scoped entries included)")],
                   responses={200: docs.CompareOutSerializer, **docs.errors(400, 404)})
    def get(self, request):
        params = request.query_params
        missing = {name: ["This query parameter is required."] for name in ("from", "to") if not params.get(name)}
        if missing:
            raise ValidationFailed(f"name two environments: {', '.join(missing)} missing", details=missing)
        source = environment_named(params["from"], field="from")
        target = environment_named(params["to"], field="to")
        if source.pk == target.pk:
            raise ValidationFailed("from and to name the same environment", details={"to": ["Pick another environment."]})
        differences = environments_compare(tenant=request_tenant(request), source=source, target=target,
                                           service_name=params.get("service", ""), reveal=reveal_allowed(request))
        return Response({"differences": differences})
