"""Flag routes: list, create, read, update, delete, and the Unleash import."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.conditional import conditional_response, expected_version
from core.api.strict import StrictSerializer, validated_body
from core.api.tenancy import request_tenant
from core.errors import NotFound, ValidationFailed
from flags import selectors
from flags.api import docs
from flags.models import Flag
from flags.services.flags import flag_create, flag_delete, flag_update
from flags.services.unleash_import import flags_import_unleash
from tenants.selectors import environment_named


class FlagCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    environment = serializers.SlugField(required=False, allow_null=True)
    is_enabled = serializers.BooleanField(required=False, default=False)
    rollout_percentage = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=100)
    strategies = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    kind = serializers.ChoiceField(choices=["boolean", "string", "number", "json"], required=False, default="boolean")
    variants = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True)
    dependencies = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True)


class FlagUpdateSerializer(StrictSerializer):
    environment = serializers.SlugField(required=False, allow_null=True)
    is_enabled = serializers.BooleanField(required=False, allow_null=True)
    rollout_percentage = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=100)
    strategies = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    kind = serializers.ChoiceField(choices=["boolean", "string", "number", "json"], required=False)
    variants = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True)
    dependencies = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True)
    version = serializers.IntegerField(required=False, min_value=0)


class FlagListCreateView(APIView):
    query_parameters = {"GET": frozenset({"environment"})}
    required_scopes = {"GET": "flags:read", "POST": "flags:write"}

    @extend_schema(parameters=[OpenApiParameter("environment", str)],
                   responses=docs.conditional(docs.FlagOutSerializer(many=True)))
    def get(self, request):
        tenant = request_tenant(request)
        env_slug = request.query_params.get("environment")
        env = environment_named(env_slug) if env_slug else None
        flags = Flag.objects.filter(tenant_id=tenant.pk).select_related("tenant", "default_environment").order_by("name")
        return conditional_response(request, [selectors.flag_out(f, environment=env) for f in flags])

    @extend_schema(request=FlagCreateSerializer, responses={201: docs.FlagOutSerializer, **docs.errors(409)})
    def post(self, request):
        data = validated_body(FlagCreateSerializer, request.data)
        tenant = request_tenant(request)
        env = environment_named(data["environment"]) if data.get("environment") else None
        flag = flag_create(
            tenant=tenant, name=data["name"], environment=env, is_enabled=data["is_enabled"],
            rollout_percentage=data.get("rollout_percentage"), strategies=data.get("strategies"),
            description=data["description"], kind=data["kind"], variants=data.get("variants"),
            dependencies=data.get("dependencies"), actor=request.auth.actor, user_id=request.auth.user_id,
        )
        flag = selectors.flag_for_tenant(tenant_id=tenant.pk, flag_id=flag.pk)
        return Response(selectors.flag_out(flag, environment=env), status=status.HTTP_201_CREATED)


class FlagDetailView(APIView):
    query_parameters = {"GET": frozenset({"environment"}), "PUT": frozenset({"environment"}), "PATCH": frozenset({"environment"})}
    required_scopes = {"GET": "flags:read", "PUT": "flags:write", "PATCH": "flags:write", "DELETE": "flags:write"}

    def _flag(self, request, flag_id: str) -> Flag:
        if not (str(flag_id).isascii() and str(flag_id).isdigit()):  # "³".isdigit() is True, int("³") fails
            raise NotFound("flag ids are integers")
        tenant = request_tenant(request)
        return selectors.flag_for_tenant(tenant_id=tenant.pk, flag_id=int(flag_id))

    @extend_schema(parameters=[OpenApiParameter("environment", str)], responses=docs.conditional(docs.FlagOutSerializer))
    def get(self, request, flag_id: str):
        env_slug = request.query_params.get("environment")
        env = environment_named(env_slug) if env_slug else None
        return conditional_response(request, selectors.flag_out(self._flag(request, flag_id), environment=env))

    @extend_schema(request=FlagUpdateSerializer, responses={200: docs.FlagOutSerializer, **docs.errors(412)})
    def put(self, request, flag_id: str):
        return self._update(request, flag_id)

    @extend_schema(request=FlagUpdateSerializer, responses={200: docs.FlagOutSerializer, **docs.errors(412)})
    def patch(self, request, flag_id: str):
        return self._update(request, flag_id)

    def _update(self, request, flag_id: str):
        flag = self._flag(request, flag_id)
        data = validated_body(FlagUpdateSerializer, request.data)
        env_slug = data.get("environment") or request.query_params.get("environment")
        env = environment_named(env_slug) if env_slug else None
        flag = flag_update(
            flag=flag, environment=env, is_enabled=data.get("is_enabled"),
            rollout_percentage=data.get("rollout_percentage"), strategies=data.get("strategies"),
            description=data.get("description"), variants=data.get("variants"), dependencies=data.get("dependencies"),
            kind=data.get("kind"), expected_version=expected_version(request, data.get("version")),
            actor=request.auth.actor, user_id=request.auth.user_id,
        )
        flag = selectors.flag_for_tenant(tenant_id=flag.tenant_id, flag_id=flag.pk)
        return Response(selectors.flag_out(flag, environment=env))

    @extend_schema(responses={204: docs.NO_CONTENT})
    def delete(self, request, flag_id: str):
        flag_delete(flag=self._flag(request, flag_id), actor=request.auth.actor, user_id=request.auth.user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ImportUnleashView(APIView):
    query_parameters = frozenset({"environment"})
    required_scopes = {"POST": "flags:write"}

    @extend_schema(parameters=[OpenApiParameter("environment", str, required=True)], request=dict,
                   responses={200: docs.UnleashImportSummarySerializer})
    def post(self, request):
        tenant = request_tenant(request)
        env_slug = request.query_params.get("environment")
        if not env_slug:
            raise ValidationFailed("?environment= is required", details={"environment": ["required"]})
        env = environment_named(env_slug)
        summary = flags_import_unleash(
            tenant=tenant, environment=env, document=request.data, actor=request.auth.actor, user_id=request.auth.user_id
        )
        return Response(summary)
