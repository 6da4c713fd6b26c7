"""Config entry routes: resolve a key (``GET /api/v1/config/{key}``, with its lean
path), create, list, read, update, delete and revert entries (API.md "Configs")."""
from __future__ import annotations

from django.db.models import Q
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.conditional import conditional_response, expected_version, not_modified, version_etag
from core.api.lean import json_response, lean_route, lean_tenant, not_modified_response
from core.api.pagination import Pagination
from core.api.strict import bool_param, refuse_unknown, validated_body
from core.api.tenancy import request_tenant
from core.errors import NotFound, ValidationFailed
from core.metrics import CONFIG_FETCH_SECONDS
from tenants import pins, selectors
from tenants.api import docs
from tenants.models import ConfigEntry
from tenants.services.configs import config_create, config_delete, config_revert, config_update

from .. import serializers as s
from .common import ENV_PARAM, SVC_PARAM, entry_etag, env_or_none, reveal_allowed, timed


def _entry_for(request, config_id: str) -> ConfigEntry:
    """An entry the caller may write: its tenant's, or global ones for platform callers."""
    if not (str(config_id).isascii() and str(config_id).isdigit()):  # "³".isdigit() is True, int("³") fails
        raise NotFound("config entry ids are integers")
    entry = ConfigEntry.objects.select_related("tenant", "environment").filter(pk=int(config_id)).first()
    principal = request.auth
    if entry is None:
        raise NotFound("config entry not found")
    if not principal.all_tenants and entry.tenant_id != principal.tenant_id:
        # Global entries are visible to bound callers but only platform callers write them.
        raise NotFound("config entry not found")
    tenant_header = request.META.get("HTTP_X_TENANT_ID")
    if tenant_header and entry.tenant_id and entry.tenant.slug != tenant_header:
        raise NotFound("config entry not found")
    return entry


def _config_read_body(key: str, data: dict, environment: str | None, service_name: str, reveal: bool) -> dict:
    """The answer of a config read (``{"key", "value", ..., "source"}``); its ETag is
    ``_config_read_etag``'s."""
    value, masked = selectors.resolved_value(data, reveal=reveal)
    body = {
        "key": key,
        "value": value,
        "environment": environment,
        "service_name": service_name or None,
        "version": data["version"],
        "source": data["source"],
        "is_secret": data["is_secret"],
        "is_encrypted": data["is_secret"],
        "id": data["entry_id"],
    }
    if masked:
        body["masked"] = True
    return body


def _config_read_etag(data: dict, reveal: bool) -> str | None:
    """The ETag of a config read: the entry and its version, and whether the value
    was masked (a masked and a revealed answer are different representations)."""
    if not data["entry_id"]:
        return None
    return version_etag(data["entry_id"], data["version"], masked=data["is_secret"] and not reveal)


class ConfigKeyView(APIView):
    """``GET /api/v1/config/{key}`` (resolve) and ``PUT/PATCH/DELETE /api/v1/config/{id}``."""

    query_parameters = {"GET": frozenset({"environment", "service_name", "explain"})}
    read_scope = "configs:read"
    write_scope = "configs:write"

    @extend_schema(parameters=[ENV_PARAM, SVC_PARAM, OpenApiParameter("explain", bool)], responses=docs.conditional(docs.ConfigValueSerializer))
    @timed("config")
    def get(self, request, key: str):
        tenant = request_tenant(request)
        environment = request.query_params.get("environment") or None
        service_name = request.query_params.get("service_name") or ""
        reveal = reveal_allowed(request)
        explain = bool_param(request, "explain")
        pin = pins.pinned(tenant_id=tenant.pk, environment=environment, service_name=service_name) if explain else None
        if pin is not None:  # a service pinned to a release: the release's value and chain
            data = pin.resolution(key)
            chain = pin.explain(key, reveal=reveal)
        elif explain:
            res = selectors.config_resolve(
                tenant=tenant, key=key, environment=environment, service_name=service_name, explain=True, reveal=reveal
            )
            data = res.to_cache()
            chain = res.chain
        else:
            data = selectors.config_resolve_cached(
                tenant=tenant, key=key, environment=environment, service_name=service_name
            )
            chain = None
        if not data["found"]:
            raise NotFound(f"config '{key}' not found")
        body = _config_read_body(key, data, environment, service_name, reveal)
        etag = _config_read_etag(data, reveal)
        if chain is not None:
            body["explain"] = chain
            etag = None
        return conditional_response(request, body, etag=etag)

    @extend_schema(request=s.ConfigUpdateSerializer, responses={200: docs.ConfigEntrySerializer, **docs.errors(412)})
    def put(self, request, key: str):
        return self._update(request, key)

    @extend_schema(request=s.ConfigUpdateSerializer, responses={200: docs.ConfigEntrySerializer, **docs.errors(412)})
    def patch(self, request, key: str):
        return self._update(request, key)

    def _update(self, request, config_id: str):
        data = validated_body(s.ConfigUpdateSerializer, request.data)
        entry = _entry_for(request, config_id)
        is_secret = data.get("is_secret", data.get("is_encrypted"))
        if request.method == "PUT" and "value" not in data and "description" not in data and is_secret is None:
            raise ValidationError({"value": ["This field is required."]})
        kwargs = {}
        if "value" in data:
            kwargs["value"] = data["value"]
        entry = config_update(
            entry=entry,
            description=data.get("description"),
            is_secret=is_secret,
            expected_version=expected_version(request, data.get("version")),
            actor=request.auth.actor,
            user_id=request.auth.user_id,
            can_read_secrets=reveal_allowed(request),
            **kwargs,
        )
        response = Response(s.entry_out(entry, reveal=reveal_allowed(request)))
        response["ETag"] = entry_etag(entry)
        return response

    @extend_schema(responses={204: docs.NO_CONTENT, **docs.errors(412)})
    def delete(self, request, key: str):
        entry = _entry_for(request, key)
        config_delete(
            entry=entry, expected_version=expected_version(request), actor=request.auth.actor,
            user_id=request.auth.user_id,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConfigCreateView(APIView):
    """``POST /api/v1/config/``: create an entry."""

    read_scope = "configs:read"
    write_scope = "configs:write"

    @extend_schema(request=s.ConfigCreateSerializer, responses={201: docs.ConfigEntrySerializer, **docs.errors(409)})
    def post(self, request):
        data = validated_body(s.ConfigCreateSerializer, request.data)
        principal = request.auth
        if "tenant" in data and data["tenant"] is None:
            if not principal.all_tenants:
                raise NotFound("global entries are written by platform credentials only")
            tenant = None
        else:
            tenant = request_tenant(request, data.get("tenant"))
        is_secret = data["is_secret"] or data.get("is_encrypted", False)
        entry = config_create(
            tenant=tenant,
            key=data["key"],
            value=data["value"],
            environment=env_or_none(data.get("environment")),
            service_name=data.get("service_name") or "",
            description=data.get("description", ""),
            is_secret=is_secret,
            actor=principal.actor,
            user_id=principal.user_id,
        )
        entry = ConfigEntry.objects.select_related("tenant", "environment").get(pk=entry.pk)
        response = Response(s.entry_out(entry, reveal=reveal_allowed(request)), status=status.HTTP_201_CREATED)
        response["ETag"] = entry_etag(entry)
        return response


class ConfigListView(APIView):
    """``GET /api/v1/configs/``: entries with filters, paginated."""

    query_parameters = frozenset({"tenant", "environment", "service_name", "key_prefix", "limit", "offset"})
    read_scope = "configs:read"

    @extend_schema(
        parameters=[
            OpenApiParameter("tenant", str), ENV_PARAM, SVC_PARAM, OpenApiParameter("key_prefix", str),
            OpenApiParameter("limit", int), OpenApiParameter("offset", int),
        ],
        responses=docs.conditional(docs.ConfigEntryPageSerializer),
    )
    def get(self, request):
        principal = request.auth
        reveal = reveal_allowed(request)
        qs = ConfigEntry.objects.select_related("tenant", "environment")
        if not reveal:
            qs = qs.defer("secret_value")
        tenant_slug = request.query_params.get("tenant") or request.META.get("HTTP_X_TENANT_ID")
        if tenant_slug == "global":
            qs = qs.filter(tenant__isnull=True)
        elif tenant_slug or not principal.all_tenants:
            tenant = request_tenant(request, tenant_slug)
            qs = qs.filter(Q(tenant_id=tenant.pk) | Q(tenant__isnull=True))
        env = request.query_params.get("environment")
        if env:
            qs = qs.filter(environment_id=selectors.environment_named(env).pk)
        svc = request.query_params.get("service_name")
        if svc:
            qs = qs.filter(service_name=svc)
        prefix = request.query_params.get("key_prefix")
        if prefix:
            qs = qs.filter(key__startswith=prefix)
        paginator = Pagination()
        page = paginator.paginate_queryset(qs.order_by("key", "id"), request, view=self)
        results = [s.entry_out(e, reveal=reveal) for e in page]
        body = {"count": paginator.count, "next": paginator.get_next_link(), "previous": paginator.get_previous_link(), "results": results}
        return conditional_response(request, body)


class ConfigEntryDetailView(APIView):
    """``GET /api/v1/configs/{id}``: one entry with its ETag (``"<id>-<version>"``) for If-Match."""

    read_scope = "configs:read"

    @extend_schema(responses=docs.conditional(docs.ConfigEntrySerializer))
    def get(self, request, config_id: int):
        entry = ConfigEntry.objects.select_related("tenant", "environment").filter(pk=config_id).first()
        principal = request.auth
        if entry is None or (entry.tenant_id and not principal.all_tenants and entry.tenant_id != principal.tenant_id):
            raise NotFound("config entry not found")
        reveal = reveal_allowed(request)
        return conditional_response(request, s.entry_out(entry, reveal=reveal), etag=entry_etag(entry, entry.is_secret and not reveal))


class ConfigRevertView(APIView):
    """``POST /api/v1/configs/{id}/revert`` with ``{"history_id"}``: back to an earlier version."""

    required_scopes = {"POST": "configs:write"}

    @extend_schema(request=docs.RevertSerializer, responses={200: docs.ConfigEntrySerializer})
    def post(self, request, config_id: int):
        entry = _entry_for(request, str(config_id))
        refuse_unknown(request.data, ("history_id",))
        history_id = request.data.get("history_id") if isinstance(request.data, dict) else None
        if isinstance(history_id, bool) or not isinstance(history_id, int):
            raise ValidationFailed("history_id must be an integer", details={"history_id": ["required"]})
        entry = config_revert(entry=entry, history_id=history_id, actor=request.auth.actor,
                                       user_id=request.auth.user_id)
        response = Response(s.entry_out(entry, reveal=reveal_allowed(request)))
        response["ETag"] = entry_etag(entry)
        return response


# --- the lean route of the hottest read (core.api.lean) -------------------------------

_config_key_view = ConfigKeyView.as_view()


@lean_route(_config_key_view, method="GET", scope="configs:read", query=("environment", "service_name"),
            timer=CONFIG_FETCH_SECONDS.labels("config"))
def config_key_route(request, principal, query, key: str):
    """``GET /api/v1/config/{key}`` for the case that is nearly every request of the
    fleet (see ``core.api.lean``): no ``explain``, a value that exists. The same
    tenant, cached resolution, body and ETag as ConfigKeyView; anything else is
    ConfigKeyView's."""
    environment = query.get("environment") or None
    service_name = query.get("service_name") or ""
    tenant = lean_tenant(request, principal)
    data = selectors.config_resolve_cached(tenant=tenant, key=key, environment=environment, service_name=service_name)
    if not data["found"]:
        return None

    def answer():
        reveal = principal.has_scope("secrets:read")
        etag = _config_read_etag(data, reveal)
        if etag and not_modified(request, etag):  # unchanged: nothing to build, nothing to decrypt
            return not_modified_response(etag)
        return json_response(_config_read_body(key, data, environment, service_name, reveal), etag=etag)

    return answer
