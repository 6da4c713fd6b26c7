"""Schema routes: ``/api/v1/schemas/`` (reading needs configs:read, writing ``admin``)."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.conditional import conditional_response, expected_version
from core.api.strict import validated_body
from core.errors import NotFound, ValidationFailed
from tenants.api import docs
from tenants.models import ConfigSchema
from tenants.services.schemas import schema_delete, schema_set

from .. import serializers as s
from .common import require_platform


class SchemaListView(APIView):
    """``GET/POST /api/v1/schemas/``: reading needs configs:read, registering ``admin``."""

    required_scopes = {"GET": "configs:read", "POST": "admin"}

    @extend_schema(responses=docs.conditional(docs.ConfigSchemaOutSerializer(many=True)))
    def get(self, request):
        return conditional_response(request, [s.schema_out(o) for o in ConfigSchema.objects.order_by("key")])

    @extend_schema(request=s.SchemaSerializer,
                   responses={200: docs.ConfigSchemaOutSerializer, 201: docs.ConfigSchemaOutSerializer, **docs.errors(412)})
    def post(self, request):
        require_platform(request)
        data = validated_body(s.SchemaSerializer, request.data)
        obj, created = schema_set(
            key=data["key"], schema=data["schema"], metadata=data.get("metadata"), required=data.get("required", False),
            default_value=data.get("default_value"), expected_version=expected_version(request, data.get("version")),
            actor=request.auth.actor, user_id=request.auth.user_id,
        )
        return Response(s.schema_out(obj), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class SchemaDetailView(APIView):
    required_scopes = {"GET": "configs:read", "PUT": "admin", "DELETE": "admin"}

    @extend_schema(responses=docs.conditional(docs.ConfigSchemaOutSerializer))
    def get(self, request, key: str):
        obj = ConfigSchema.objects.filter(key=key).first()
        if obj is None:
            raise NotFound(f"no schema for '{key}'")
        return conditional_response(request, s.schema_out(obj))

    @extend_schema(request=s.SchemaUpdateSerializer,
                   responses={200: docs.ConfigSchemaOutSerializer, 201: docs.ConfigSchemaOutSerializer, **docs.errors(412)})
    def put(self, request, key: str):
        require_platform(request)
        data = validated_body(s.SchemaUpdateSerializer, request.data)
        if data.get("key") not in (None, key):
            raise ValidationFailed("the body's key differs from the path's")
        obj, created = schema_set(
            key=key, schema=data["schema"], metadata=data.get("metadata"), required=data.get("required", False),
            default_value=data.get("default_value"), expected_version=expected_version(request, data.get("version")),
            actor=request.auth.actor, user_id=request.auth.user_id,
        )
        return Response(s.schema_out(obj), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(responses={204: docs.NO_CONTENT})
    def delete(self, request, key: str):
        require_platform(request)
        schema_delete(key=key, actor=request.auth.actor, user_id=request.auth.user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
