"""Registry routes: /api/v1/registry/... (API keys) and /services/{name}, /heartbeat (service tokens)."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import parsers
from core.api.conditional import conditional_response
from core.api.lean import json_response, lean_route, lean_tenant
from core.api.strict import ANY_QUERY, StrictSerializer, validated_body
from core.api.tenancy import request_tenant
from core.errors import NotFound
from core.validators import service_url_field
from registry.api import docs
from registry.api.authentication import cached_service_principal

from .. import heartbeats, selectors, services
from ..models import Instance

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class RegisterSerializer(StrictSerializer):
    service_name = serializers.RegexField(_NAME, max_length=100)
    service_url = service_url_field()
    health_check_url = service_url_field(required=False, allow_blank=True, allow_null=True)
    metadata = serializers.DictField(required=False, default=dict)
    status = serializers.ChoiceField(choices=["healthy", "starting", "unhealthy"], required=False, default="healthy")


class HealthSerializer(StrictSerializer):
    service_name = serializers.RegexField(_NAME, max_length=100)
    status = serializers.ChoiceField(choices=["healthy", "starting", "unhealthy"], required=False, default="healthy")
    response_time = serializers.FloatField(required=False, allow_null=True, min_value=0)
    instance_id = serializers.IntegerField(required=False, min_value=1)
    service_url = service_url_field(required=False)


class HeartbeatSerializer(StrictSerializer):
    service_id = serializers.IntegerField(min_value=1)
    status = serializers.ChoiceField(choices=["healthy", "starting", "unhealthy"], required=False, default="healthy")
    response_time = serializers.FloatField(required=False, allow_null=True, min_value=0)


def _own_service_only(request, service_name: str) -> None:
    """A service token acts on its own service's registry entries only: it registers,
    beats for and deregisters instances of the service its ``service_id`` belongs to
    (it may discover any service of its tenant). Other credentials: unchanged."""
    principal = request.auth
    if principal.kind != "service":
        return
    owner = selectors.instance_owner(instance_id=int(principal.ident))
    if owner is None or owner[1] != service_name:

        raise PermissionDenied(f"a service token acts on its own service's instances only "
                               f"('{owner[1] if owner else '?'}'), not on '{service_name}'")


class RegisterView(APIView):
    required_scopes = {"POST": "registry:write"}

    @extend_schema(request=RegisterSerializer, responses={200: docs.InstanceOutSerializer})
    def post(self, request):
        data = validated_body(RegisterSerializer, request.data)
        tenant = request_tenant(request)
        _own_service_only(request, data["service_name"])
        instance, _created = services.instance_register(
            tenant=tenant, service_name=data["service_name"], url=data["service_url"],
            health_check_url=data.get("health_check_url") or "", metadata=data.get("metadata"),
            status=data["status"], actor=request.auth.actor,
        )
        return Response(selectors.instance_out(instance))


class HealthView(APIView):
    """``PUT /api/v1/registry/health``: a heartbeat by service name, with the instance's own status.

    The body names a service, not an instance: the beat applies to the instances
    of that service this credential registered (or to one, with ``instance_id``
    or ``service_url``).
    """

    required_scopes = {"PUT": "registry:write"}

    @extend_schema(request=HealthSerializer, responses={200: docs.HealthBeatOutSerializer})
    def put(self, request):
        data = validated_body(HealthSerializer, request.data)
        tenant = request_tenant(request)
        _own_service_only(request, data["service_name"])
        qs = Instance.objects.filter(service__tenant_id=tenant.pk, service__name=data["service_name"])
        if data.get("instance_id"):
            qs = qs.filter(pk=data["instance_id"])
        elif data.get("service_url"):
            qs = qs.filter(url=data["service_url"])
        else:
            qs = qs.filter(registered_by=request.auth.actor)
        ids = list(qs.values_list("pk", flat=True))
        if not ids:
            raise NotFound(f"no instance of '{data['service_name']}' registered by this credential")
        for iid in ids:
            heartbeats.instance_heartbeat(instance_id=iid, status=data["status"], response_time_ms=data.get("response_time"),
                                          actor=request.auth.actor, tenant_id=tenant.pk)
        return Response({"service_name": data["service_name"], "status": data["status"], "instances": ids})


class HealthyListView(APIView):
    required_scopes = {"GET": "registry:read"}

    @extend_schema(responses=docs.conditional(docs.HealthyListSerializer))
    def get(self, request):
        tenant = request_tenant(request)
        return conditional_response(request, {"services": [selectors.instance_out(i) for i in selectors.instances_healthy(tenant_id=tenant.pk)]})


class DiscoverView(APIView):
    query_parameters = ANY_QUERY  # every parameter but tenant is a metadata filter
    required_scopes = {"GET": "registry:read"}

    @extend_schema(responses={200: docs.InstanceOutSerializer,
                              503: docs.error(503, "No healthy instance (or none matching the metadata filters)")})
    def get(self, request, service_name: str):
        tenant = request_tenant(request)
        instance = selectors.instance_discover(tenant_id=tenant.pk, service_name=service_name,
                                               filters=selectors.metadata_filters(request.query_params))
        return Response(instance)


class InstanceDetailView(APIView):
    required_scopes = {"DELETE": "registry:write", "GET": "registry:read"}

    @extend_schema(responses=docs.conditional(docs.InstanceOutSerializer))
    def get(self, request, instance_id: int):
        tenant = request_tenant(request)
        instance = Instance.objects.select_related("service").filter(pk=instance_id, service__tenant_id=tenant.pk).first()
        if instance is None:
            raise NotFound("instance not found")
        return conditional_response(request, selectors.instance_out(instance))

    @extend_schema(responses={204: docs.NO_CONTENT})
    def delete(self, request, instance_id: int):
        tenant = request_tenant(request)
        if request.auth.kind == "service":
            owner = selectors.instance_owner(instance_id=instance_id)
            if owner is None or owner[0] != tenant.pk:
                raise NotFound("instance not found")
            _own_service_only(request, owner[1])
        services.instance_deregister(instance_id=instance_id, tenant_id=tenant.pk, actor=request.auth.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ServiceUrlView(APIView):
    """``GET /services/{name}`` → ``{"url": ...}``: the URL of one healthy instance, for a service token's client."""

    query_parameters = ANY_QUERY  # every parameter but tenant is a metadata filter
    required_scopes = {"GET": "registry:read"}

    @extend_schema(responses={200: docs.ServiceUrlSerializer,
                              503: docs.error(503, "No healthy instance (or none matching the metadata filters)")})
    def get(self, request, service_name: str):
        tenant = request_tenant(request)
        instance = selectors.instance_discover(tenant_id=tenant.pk, service_name=service_name,
                                               filters=selectors.metadata_filters(request.query_params))
        return Response({"url": instance["url"], "id": instance["id"], "service_name": service_name})


_BEAT_FIELDS = frozenset({"service_id", "status", "response_time"})
_BEAT_STATUSES = frozenset({"healthy", "starting", "unhealthy"})


def _plain_beat(data) -> dict | None:
    """The heartbeat body in its plain shape, checked by hand; None for anything else."""
    if isinstance(data, dict) and data.keys() <= _BEAT_FIELDS:
        service_id = data.get("service_id")
        status_ = data.get("status", "healthy")
        response_time = data.get("response_time")
        if (type(service_id) is int and service_id >= 1 and type(status_) is str and status_ in _BEAT_STATUSES
                and (response_time is None or (type(response_time) in (int, float) and 0 <= response_time < float("inf")))):
            return {"service_id": service_id, "status": status_,
                    "response_time": None if response_time is None else float(response_time)}
    return None


def _heartbeat_body(data) -> dict:
    """The heartbeat body, validated. A heartbeat comes every few seconds from every
    instance and its body is nearly always the same plain shape: that shape is
    checked by hand (building the serializer's fields cost more than the
    heartbeat's own work); anything else goes through the serializer, which
    accepts what it accepts and words the errors."""
    plain = _plain_beat(data)
    return validated_body(HeartbeatSerializer, data) if plain is None else plain


class HeartbeatView(APIView):
    """``POST /heartbeat`` with ``{"service_id": 42}`` and that instance's service token."""

    required_scopes = {"POST": "registry:write"}

    @extend_schema(request=HeartbeatSerializer, responses={200: docs.HeartbeatOutSerializer})
    def post(self, request):
        data = _heartbeat_body(request.data)
        principal = request.auth
        if principal.kind == "service" and principal.ident != str(data["service_id"]):

            raise PermissionDenied("the token's service_id names another instance")
        tenant = request_tenant(request)
        result = heartbeats.instance_heartbeat(instance_id=data["service_id"], status=data["status"],
                                               response_time_ms=data.get("response_time"), actor=principal.actor,
                                               tenant_id=tenant.pk)
        if result is None:
            raise NotFound("instance not found")
        return Response({"service_id": data["service_id"], "status": "ok"})


# --- the lean route of discovery (core.api.lean) -----------------------------------------

_discover_view = DiscoverView.as_view()


@lean_route(_discover_view, method="GET", scope="registry:read")
def discover_route(request, principal, query, service_name: str):
    """``GET /api/v1/registry/{name}`` without metadata filters (see ``core.api.lean``):
    the same tenant and cached snapshot as DiscoverView, which answers anything
    else (filters, a service not registered, none healthy)."""
    tenant = lean_tenant(request, principal)
    instance = selectors.instance_discover(tenant_id=tenant.pk, service_name=service_name, filters=None)
    return lambda: json_response(instance)


# --- the lean route of the heartbeat -------------------------------------------------------

_heartbeat_view = HeartbeatView.as_view()


@lean_route(_heartbeat_view, method="POST", scope="registry:write", content_type="application/json",
            credential=cached_service_principal)
def heartbeat_route(request, principal, query):
    """``POST /heartbeat`` with a service token this process verified already (or a
    cached API key) and a plain body (see ``core.api.lean``): the same checks and
    service function as HeartbeatView, which answers anything else (a token not
    verified yet, another instance's id, a body the serializer must word, an
    unknown instance or another tenant's)."""
    data = _plain_beat(parsers.loads(request.body))
    if data is None or (principal.kind == "service" and principal.ident != str(data["service_id"])):
        return None
    tenant = lean_tenant(request, principal)
    owner = selectors.instance_owner(instance_id=data["service_id"])
    if owner is None or owner[0] != tenant.pk:
        return None  # unknown, or another tenant's: the DRF view answers 404

    def answer():
        result = heartbeats.instance_heartbeat(instance_id=data["service_id"], status=data["status"],
                                               response_time_ms=data["response_time"], actor=principal.actor,
                                               tenant_id=tenant.pk)
        return None if result is None else json_response({"service_id": data["service_id"], "status": "ok"})

    return answer
