"""Environment routes: ``/api/v1/environments/``."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.conditional import conditional_response
from core.api.strict import validated_body
from tenants.api import docs
from tenants.models import Environment
from tenants.services.environments import environment_create

from .. import serializers as s
from .common import require_platform


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
