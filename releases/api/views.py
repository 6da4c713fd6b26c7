"""Release routes: ``/api/v1/releases/...`` (API.md "Change requests and releases").

Scopes: ``configs:read`` reads releases and compares them (secret values only with
``secrets:read``); ``configs:write`` creates a release, pins and unpins a service and
opens a rollback change request."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.conditional import conditional_response
from core.api.pagination import Pagination
from core.api.strict import StrictSerializer, validated_body
from core.api.tenancy import request_tenant
from releases import selectors
from releases.api import docs
from releases.models import RELEASE_NAME_MAX, Release
from releases.rollback import release_rollback
from releases.services import release_create, release_pin, release_unpin
from tenants.selectors import environment_named

SERVICE_PARAM = OpenApiParameter("service", str, description="resolve for this service (default: the tenant)")


def _reveal(request) -> bool:
    return request.auth.has_scope("secrets:read")


def release_out(release: Release) -> dict:
    return {"id": release.pk, "name": release.name, "environment": release.environment.slug,
            "digest": release.digest, "created_at": release.created_at.isoformat().replace("+00:00", "Z")}


class ReleaseCreateSerializer(StrictSerializer):
    environment = serializers.SlugField(max_length=64)
    name = serializers.CharField(max_length=RELEASE_NAME_MAX)


class RollbackSerializer(StrictSerializer):
    title = serializers.CharField(required=False, max_length=200)
    apply_at = serializers.DateTimeField(required=False, allow_null=True)


class NoBodySerializer(StrictSerializer):
    pass


class ReleaseListView(APIView):
    """``GET /api/v1/releases/?environment=`` (newest first, paginated) and ``POST`` (snapshot now)."""

    query_parameters = {"GET": frozenset({"environment", "limit", "offset"})}
    required_scopes = {"GET": "configs:read", "POST": "configs:write"}

    @extend_schema(parameters=[OpenApiParameter("environment", str), OpenApiParameter("limit", int),
                               OpenApiParameter("offset", int)],
                   responses=docs.conditional(docs.ReleasePageSerializer))
    def get(self, request):
        tenant = request_tenant(request)
        env = request.query_params.get("environment")
        qs = selectors.releases_of(tenant_id=tenant.pk, environment_id=environment_named(env).pk if env else None)
        paginator = Pagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        body = {"count": paginator.count, "next": paginator.get_next_link(),
                "previous": paginator.get_previous_link(), "results": [release_out(r) for r in page]}
        return conditional_response(request, body)

    @extend_schema(request=ReleaseCreateSerializer, responses={201: docs.ReleaseOutSerializer, **docs.errors(409)})
    def post(self, request):
        data = validated_body(ReleaseCreateSerializer, request.data)
        tenant = request_tenant(request)
        release = release_create(tenant=tenant, environment=environment_named(data["environment"]), name=data["name"],
                                 actor=request.auth.actor, user_id=request.auth.user_id)
        return Response(release_out(release), status=status.HTTP_201_CREATED)


class ReleaseDetailView(APIView):
    """``GET /api/v1/releases/{id}?service=``: the release, its resolved values and flag states.
    No PUT, PATCH or DELETE: a release is immutable."""

    query_parameters = frozenset({"service"})
    read_scope = "configs:read"

    @extend_schema(parameters=[SERVICE_PARAM], responses=docs.conditional(docs.ReleaseDetailSerializer))
    def get(self, request, release_id: str):
        tenant = request_tenant(request)
        release = selectors.release_for_tenant(tenant_id=tenant.pk, release_id=release_id)
        service = request.query_params.get("service") or ""
        body = {
            **release_out(release),
            "created_by": release.created_by,
            "service": service or None,
            "services": sorted(s for s in release.content["views"] if s),
            "pins": selectors.release_pins(release=release),
            "configs": selectors.release_values(release=release, service=service, reveal=_reveal(request)),
            "flags": release.content["flags"],
            "schemas": {k: v["version"] for k, v in release.content["schemas"].items()},
        }
        return conditional_response(request, body)


class ReleaseCompareView(APIView):
    """``GET /api/v1/releases/{a}/compare/{b}?service=``: what differs from a to b."""

    query_parameters = frozenset({"service"})
    read_scope = "configs:read"

    @extend_schema(parameters=[SERVICE_PARAM], responses=docs.conditional(docs.CompareSerializer))
    def get(self, request, release_id: str, other_id: str):
        tenant = request_tenant(request)
        a = selectors.release_for_tenant(tenant_id=tenant.pk, release_id=release_id)
        b = selectors.release_for_tenant(tenant_id=tenant.pk, release_id=other_id)
        body = selectors.releases_compare(a=a, b=b, service=request.query_params.get("service") or "",
                                          reveal=_reveal(request))
        return conditional_response(request, body)


class ReleasePinView(APIView):
    """``PUT /api/v1/releases/{id}/pins/{service_name}`` (no body): the service's config reads
    in the release's environment answer from the release; ``DELETE``: live again."""

    required_scopes = {"PUT": "configs:write", "DELETE": "configs:write"}

    @extend_schema(request=None, responses={200: docs.PinSerializer, **docs.errors(409)})
    def put(self, request, release_id: str, service_name: str):
        tenant = request_tenant(request)
        release = selectors.release_for_tenant(tenant_id=tenant.pk, release_id=release_id)
        validated_body(NoBodySerializer, request.data if request.data else {})
        release_pin(release=release, service_name=service_name, actor=request.auth.actor,
                    user_id=request.auth.user_id)
        return Response({"release": release.pk, "environment": release.environment.slug,
                         "service_name": service_name})

    @extend_schema(responses={204: docs.NO_CONTENT})
    def delete(self, request, release_id: str, service_name: str):
        tenant = request_tenant(request)
        release = selectors.release_for_tenant(tenant_id=tenant.pk, release_id=release_id)
        release_unpin(release=release, service_name=service_name, actor=request.auth.actor,
                      user_id=request.auth.user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReleaseRollbackView(APIView):
    """``POST /api/v1/releases/{id}/rollback`` ``{"title"?, "apply_at"?}``: one change request
    that restores the release's environment to it (releases/rollback.py)."""

    required_scopes = {"POST": "configs:write"}

    @extend_schema(request=RollbackSerializer, responses={201: dict, **docs.errors(409)})
    def post(self, request, release_id: str):
        tenant = request_tenant(request)
        release = selectors.release_for_tenant(tenant_id=tenant.pk, release_id=release_id)
        data = validated_body(RollbackSerializer, request.data if request.data else {})
        change_request = release_rollback(release=release, actor=request.auth.actor, user_id=request.auth.user_id,
                                          title=data.get("title"), apply_at=data.get("apply_at"))
        return Response({"change_request": getattr(change_request, "pk", None), "release": release.pk},
                        status=status.HTTP_201_CREATED)
