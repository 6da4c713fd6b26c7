"""Change request routes (API.md "Change requests and releases") and environment policies."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.permissions import IsAuthenticatedPrincipal
from core.api.strict import validated_body
from core.api.tenancy import request_tenant
from core.errors import Forbidden, NotFound, ValidationFailed
from tenants.selectors import environment_get, environment_named

from .. import selectors
from ..changeset import FLAG_SET, has_schema_changes, secrets_made_plain
from ..models import ChangeRequest
from ..policies import policy_set
from ..services import change_requests as svc
from . import docs
from .serializers import (
    ChangeRequestCreateSerializer,
    ChangeRequestUpdateSerializer,
    EmptySerializer,
    PolicySerializer,
    ReviewSerializer,
)


def _reveal(request) -> bool:
    return request.auth.has_scope("secrets:read")


def _out(request, cr: ChangeRequest, *, code: int = 200) -> Response:
    cr = selectors.change_request_for_tenant(tenant_id=cr.tenant_id, change_request_id=cr.pk)
    return Response(selectors.change_request_out(cr, reveal=_reveal(request)), status=code)


def _needs_flag_scope(request, changes) -> None:
    # The route needs configs:write; a request that changes flags needs flags:write too.
    if any(isinstance(c, dict) and c.get("type") == FLAG_SET for c in changes or []) and not request.auth.has_scope("flags:write"):
        raise Forbidden("changing flags needs the 'flags:write' scope")


def _needs_schema_right(request, changes) -> None:
    # A schema is global (every tenant's): proposing or applying a schema change
    # needs what the direct schema route needs, a platform credential with ``admin``.
    if has_schema_changes(changes) and not (request.auth.all_tenants and request.auth.has_scope("admin")):
        raise Forbidden("changing schemas needs a platform credential (bound to all tenants) with the 'admin' scope, "
                        "as the schema routes do")


def _may_unmask(request, tenant, environment, changes) -> None:
    keys = secrets_made_plain(tenant=tenant, environment=environment, changes=changes)
    if keys and not _reveal(request):
        raise Forbidden(f"making secrets plain ({', '.join(keys)}) needs the secrets:read scope",
                        code="secrets_read_required", details={"keys": keys})


def _id(value: str) -> int:
    if not (str(value).isascii() and str(value).isdigit()):
        raise NotFound("change request ids are integers")
    return int(value)


class ChangeRequestListView(APIView):
    query_parameters = {"GET": frozenset({"status", "environment"})}
    required_scopes = {"GET": "configs:read", "POST": "configs:write"}

    @extend_schema(parameters=[OpenApiParameter("status", str), OpenApiParameter("environment", str)], responses=docs.ChangeRequestOutSerializer(many=True))
    def get(self, request):
        tenant = request_tenant(request)
        wanted = request.query_params.get("status")
        if wanted and wanted not in dict(ChangeRequest.STATUS_CHOICES):
            raise ValidationFailed(f"unknown status '{wanted}'", details={"status": [f"one of {', '.join(dict(ChangeRequest.STATUS_CHOICES))}"]})
        env_slug = request.query_params.get("environment")
        env = environment_named(env_slug) if env_slug else None
        rows = selectors.change_requests_of(tenant=tenant, status=wanted, environment=env)[:200]
        return Response([selectors.change_request_out(cr, reveal=_reveal(request), review=False) for cr in rows])

    @extend_schema(request=ChangeRequestCreateSerializer, responses={201: docs.ChangeRequestOutSerializer, **docs.errors(400, 403)})
    def post(self, request):
        data = validated_body(ChangeRequestCreateSerializer, request.data)
        _needs_flag_scope(request, data["changes"])
        _needs_schema_right(request, data["changes"])
        tenant = request_tenant(request)
        env = environment_named(data["environment"])
        _may_unmask(request, tenant, env, data["changes"])
        cr = svc.change_request_create(
            tenant=tenant, environment=env, title=data["title"],
            description=data["description"], changes=data["changes"], apply_at=data["apply_at"], draft=data["draft"],
            actor=request.auth.actor, user_id=request.auth.user_id,
        )
        return _out(request, cr, code=status.HTTP_201_CREATED)


class ChangeRequestDetailView(APIView):
    required_scopes = {"GET": "configs:read", "PATCH": "configs:write"}

    def _cr(self, request, change_request_id) -> ChangeRequest:
        tenant = request_tenant(request)
        return selectors.change_request_for_tenant(tenant_id=tenant.pk, change_request_id=_id(change_request_id))

    @extend_schema(responses=docs.ChangeRequestOutSerializer)
    def get(self, request, change_request_id: str):
        return _out(request, self._cr(request, change_request_id))

    @extend_schema(request=ChangeRequestUpdateSerializer, responses={200: docs.ChangeRequestOutSerializer, **docs.errors(400, 409)})
    def patch(self, request, change_request_id: str):
        cr = self._cr(request, change_request_id)
        data = validated_body(ChangeRequestUpdateSerializer, request.data)
        _needs_flag_scope(request, data.get("changes"))
        _needs_schema_right(request, data.get("changes"))
        _may_unmask(request, cr.tenant, cr.environment, data.get("changes"))
        kwargs = {"apply_at": data["apply_at"]} if "apply_at" in data else {}
        cr = svc.change_request_update(
            change_request=cr, title=data.get("title"), description=data.get("description"), changes=data.get("changes"),
            open_it=data.get("status") == "open", actor=request.auth.actor, user_id=request.auth.user_id, **kwargs,
        )
        return _out(request, cr)


class _ActionView(APIView):
    body = EmptySerializer

    def post(self, request, change_request_id: str):
        tenant = request_tenant(request)
        cr = selectors.change_request_for_tenant(tenant_id=tenant.pk, change_request_id=_id(change_request_id))
        data = validated_body(self.body, request.data if request.data else {})
        cr = self.act(request, cr, data)
        return _out(request, cr)


class ApproveView(_ActionView):
    # Who may review is decided by the service (changes.approvers), for every
    # caller: the scope changes:approve for a key; for an operator's JWT, the
    # approver role in the request's tenant and environment (or the permission,
    # for an operator without roles). A 403 approver_required otherwise.
    permission_classes = [IsAuthenticatedPrincipal]
    body = ReviewSerializer

    @extend_schema(request=ReviewSerializer, responses={200: docs.ChangeRequestOutSerializer, **docs.errors(403, 409)})
    def post(self, request, change_request_id: str):
        return super().post(request, change_request_id)

    def act(self, request, cr, data):
        return svc.change_request_approve(change_request=cr, actor=request.auth.actor, user_id=request.auth.user_id,
                                          principal=request.auth, comment=data["comment"])


class DeclineView(ApproveView):
    def act(self, request, cr, data):
        return svc.change_request_decline(change_request=cr, actor=request.auth.actor, user_id=request.auth.user_id,
                                          principal=request.auth, comment=data["comment"])


class ApplyView(_ActionView):
    required_scopes = {"POST": "configs:write"}

    @extend_schema(request=None, responses={200: docs.ChangeRequestOutSerializer, **docs.errors(409)})
    def post(self, request, change_request_id: str):
        return super().post(request, change_request_id)

    def act(self, request, cr, data):
        _needs_flag_scope(request, cr.changes)
        _needs_schema_right(request, cr.changes)
        return svc.change_request_apply(change_request=cr, actor=request.auth.actor, user_id=request.auth.user_id)


class CancelView(ApplyView):
    def act(self, request, cr, data):
        return svc.change_request_cancel(change_request=cr, actor=request.auth.actor, user_id=request.auth.user_id)


class RefreshView(ApplyView):
    def act(self, request, cr, data):
        return svc.change_request_refresh(change_request=cr, actor=request.auth.actor, user_id=request.auth.user_id)


class EnvironmentPolicyView(APIView):
    required_scopes = {"GET": "configs:read", "PUT": "admin"}

    def _env(self, slug: str):
        return environment_get(slug=slug)

    @extend_schema(responses=docs.EnvironmentPolicyOutSerializer)
    def get(self, request, environment: str):
        return Response(selectors.policy_out(tenant=request_tenant(request), environment=self._env(environment)))

    @extend_schema(request=PolicySerializer, responses={200: docs.EnvironmentPolicyOutSerializer, **docs.errors(400)})
    def put(self, request, environment: str):
        tenant = request_tenant(request)
        env = self._env(environment)
        data = validated_body(PolicySerializer, request.data)
        policy_set(tenant=tenant, environment=env, approvals_required=data["approvals_required"],
                   author_may_approve=data["author_may_approve"], actor=request.auth.actor)
        return Response(selectors.policy_out(tenant=tenant, environment=env))
