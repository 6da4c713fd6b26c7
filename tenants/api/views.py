"""Config, schema, tenant and environment routes (API.md "Configs", "Tenants")."""
from __future__ import annotations

import functools
import time

from django.db.models import Q
from django.http import HttpResponse, HttpResponseNotModified
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from config_hub.api import docs
from core.api.conditional import conditional_response, expected_version, not_modified
from core.api.lean import json_response, lean_principal
from core.api.pagination import Pagination
from core.api.strict import refuse_unknown
from core.api.tenancy import request_tenant, tenant_for_principal
from core.api.throttling import admit
from core.errors import DomainError, NotFound, ValidationFailed
from config_hub.metrics import CONFIG_FETCH_SECONDS

from .. import selectors, services
from core.fields import SecretDecryptionError
from ..models import ConfigEntry, ConfigSchema, Tenant
from . import serializers as s


def _timed(route: str):
    """Observe the config fetch latency of a read route (Prometheus histogram)."""
    import functools
    import time

    from config_hub.metrics import CONFIG_FETCH_SECONDS

    histogram = CONFIG_FETCH_SECONDS.labels(route)

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                histogram.observe(time.perf_counter() - started)

        return inner

    return wrap


def _valid(serializer_class, data, **kwargs):
    if not isinstance(data, dict):
        raise ValidationFailed("the request body must be a JSON object")
    ser = serializer_class(data=data, **kwargs)
    ser.is_valid(raise_exception=True)
    return ser.validated_data


def _require_platform(request) -> None:
    """Cross-tenant routes (all-tenants reads, tenant provisioning, global schemas)
    need a credential bound to every tenant, whatever its scopes."""
    if not request.auth.all_tenants:
        from rest_framework.exceptions import PermissionDenied

        raise PermissionDenied("this route needs a platform credential (bound to all tenants)")


def _reveal(request) -> bool:
    return request.auth.has_scope("secrets:read")


def _entry_etag(entry: ConfigEntry, masked: bool = False) -> str:
    return f'"{entry.pk}-{entry.version}{"-m" if masked else ""}"'


def _valid_path_key(key: str) -> None:
    """A key named in a URL path gets the same check as one in a body: 400, never 500."""
    from django.core.exceptions import ValidationError as DjangoValidationError

    try:
        s.key_validator(key)
    except DjangoValidationError as exc:
        raise ValidationFailed(exc.messages[0], details={"config_key": exc.messages}) from exc


def _env_or_none(slug):
    return selectors.environment_named(slug) if slug else None


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


_ENV = OpenApiParameter("environment", str, description="environment slug")
_SVC = OpenApiParameter("service_name", str, description="service name")


def _config_read_body(key: str, data: dict, environment: str | None, service_name: str, reveal: bool) -> tuple[dict, str | None]:
    """The answer of a config read (``{"key", "value", ..., "source"}``) and its ETag."""
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
    return body, _config_read_etag(data, reveal)


def _config_read_etag(data: dict, reveal: bool) -> str | None:
    """The ETag of a config read: the entry and its version, and whether the value
    was masked (a masked and a revealed answer are different representations)."""
    if not data["entry_id"]:
        return None
    masked = data["is_secret"] and not reveal
    return f'"{data["entry_id"]}-{data["version"]}{"-m" if masked else ""}"'


class ConfigKeyView(APIView):
    """``GET /api/v1/config/{key}`` (resolve) and ``PUT/PATCH/DELETE /api/v1/config/{id}``."""

    query_parameters = {"GET": frozenset({"environment", "service_name", "explain"})}
    read_scope = "configs:read"
    write_scope = "configs:write"

    @extend_schema(parameters=[_ENV, _SVC, OpenApiParameter("explain", bool)], responses=docs.conditional(docs.ConfigValueSerializer))
    @_timed("config")
    def get(self, request, key: str):
        tenant = request_tenant(request)
        environment = request.query_params.get("environment") or None
        service_name = request.query_params.get("service_name") or ""
        reveal = _reveal(request)
        if request.query_params.get("explain") in ("1", "true", "yes"):
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
        body, etag = _config_read_body(key, data, environment, service_name, reveal)
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
        data = _valid(s.ConfigUpdateSerializer, request.data)
        entry = _entry_for(request, config_id)
        is_secret = data.get("is_secret", data.get("is_encrypted"))
        if request.method == "PUT" and "value" not in data and "description" not in data and is_secret is None:
            raise ValidationError({"value": ["This field is required."]})
        kwargs = {}
        if "value" in data:
            kwargs["value"] = data["value"]
        entry = services.config_update(
            entry=entry,
            description=data.get("description"),
            is_secret=is_secret,
            expected_version=expected_version(request, data.get("version")),
            actor=request.auth.actor,
            user_id=request.auth.user_id,
            can_read_secrets=_reveal(request),
            **kwargs,
        )
        response = Response(s.entry_out(entry, reveal=_reveal(request)))
        response["ETag"] = _entry_etag(entry)
        return response

    @extend_schema(responses={204: docs.NO_CONTENT, **docs.errors(412)})
    def delete(self, request, key: str):
        entry = _entry_for(request, key)
        services.config_delete(
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
        data = _valid(s.ConfigCreateSerializer, request.data)
        principal = request.auth
        if "tenant" in data and data["tenant"] is None:
            if not principal.all_tenants:
                raise NotFound("global entries are written by platform credentials only")
            tenant = None
        else:
            tenant = request_tenant(request, data.get("tenant"))
        is_secret = data["is_secret"] or data.get("is_encrypted", False)
        entry = services.config_create(
            tenant=tenant,
            key=data["key"],
            value=data["value"],
            environment=_env_or_none(data.get("environment")),
            service_name=data.get("service_name") or "",
            description=data.get("description", ""),
            is_secret=is_secret,
            actor=principal.actor,
            user_id=principal.user_id,
        )
        entry = ConfigEntry.objects.select_related("tenant", "environment").get(pk=entry.pk)
        response = Response(s.entry_out(entry, reveal=_reveal(request)), status=status.HTTP_201_CREATED)
        response["ETag"] = _entry_etag(entry)
        return response


class ConfigListView(APIView):
    """``GET /api/v1/configs/``: entries with filters, paginated."""

    query_parameters = frozenset({"tenant", "environment", "service_name", "key_prefix", "limit", "offset"})
    read_scope = "configs:read"

    @extend_schema(
        parameters=[
            OpenApiParameter("tenant", str), _ENV, _SVC, OpenApiParameter("key_prefix", str),
            OpenApiParameter("limit", int), OpenApiParameter("offset", int),
        ],
        responses=docs.conditional(docs.ConfigEntryPageSerializer),
    )
    def get(self, request):
        principal = request.auth
        reveal = _reveal(request)
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
        reveal = _reveal(request)
        return conditional_response(request, s.entry_out(entry, reveal=reveal), etag=_entry_etag(entry, entry.is_secret and not reveal))


class ServiceBundleView(APIView):
    """``GET /api/v1/config/service/{service_name}?environment=`` (a service loading its configs at startup)."""

    query_parameters = frozenset({"environment"})
    read_scope = "configs:read"

    @extend_schema(parameters=[_ENV], responses=docs.conditional(docs.BundleRowSerializer(many=True)))
    @_timed("bundle")
    def get(self, request, service_name: str):
        tenant = request_tenant(request)
        environment = request.query_params.get("environment") or None
        bundle = selectors.config_bundle_cached(tenant=tenant, environment=environment, service_name=service_name)
        reveal = _reveal(request)
        etag = bundle.etag(reveal=reveal)
        if not_modified(request, etag):  # no decryption for an unchanged bundle
            return conditional_response(request, None, etag=etag)
        return conditional_response(request, bundle.body(reveal=reveal), etag=etag)


class TenantConfigView(APIView):
    """``GET/PUT /config/tenants/{tenant_id}/configs/{config_key}``: one key of one tenant, by slug."""

    query_parameters = {"GET": frozenset({"environment", "service_name"})}
    read_scope = "configs:read"
    write_scope = "configs:write"

    @extend_schema(parameters=[_ENV, _SVC], responses=docs.conditional(docs.TenantConfigSerializer))
    @_timed("tenant_config")
    def get(self, request, tenant_id: str, config_key: str):
        tenant = request_tenant(request, tenant_id)
        environment = request.query_params.get("environment") or None
        service_name = request.query_params.get("service_name") or ""
        data = selectors.config_resolve_cached(tenant=tenant, key=config_key, environment=environment, service_name=service_name)
        if not data["found"]:
            raise NotFound(f"config '{config_key}' not found for tenant '{tenant_id}'")
        value, masked = selectors.resolved_value(data, reveal=_reveal(request))
        body = {"config_key": config_key, "config_value": value, "version": data["version"], "source": data["source"]}
        if masked:
            body["masked"] = True
        etag = f'"{data["entry_id"]}-{data["version"]}{"-m" if masked else ""}"' if data["entry_id"] else None
        return conditional_response(request, body, etag=etag)

    @extend_schema(request=s.TenantConfigPutSerializer,
                   responses={200: docs.TenantConfigWrittenSerializer, 201: docs.TenantConfigWrittenSerializer,
                              **docs.errors(409, 412)})
    def put(self, request, tenant_id: str, config_key: str):
        tenant = request_tenant(request, tenant_id)
        data = _valid(s.TenantConfigPutSerializer, request.data)
        if "config_value" not in request.data:
            raise ValidationError({"config_value": ["This field is required."]})
        _valid_path_key(config_key)
        entry, created = services.config_set(
            tenant=tenant,
            key=config_key,
            value=data["config_value"],
            environment=_env_or_none(data.get("environment")),
            service_name=data.get("service_name") or "",
            expected_version=expected_version(request, data.get("version")),
            actor=request.auth.actor,
            user_id=request.auth.user_id,
        )
        masked = entry.is_secret and not _reveal(request)
        body = {
            "config_key": config_key,
            "config_value": None if masked else entry.plain_value,
            "version": entry.version,
            "source": entry.scope_label,
            "id": entry.pk,
        }
        response = Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
        response["ETag"] = _entry_etag(entry)
        return response


class AllTenantsConfigView(APIView):
    """``GET /config/configs/{config_key}/all-tenants`` (``admin`` scope).

    Lists every active tenant for which the key resolves (tenant scope, global or
    the schema default); tenants where nothing resolves are left out.
    """

    required_scopes = {"GET": "admin"}

    @extend_schema(responses=docs.conditional(docs.AllTenantsRowSerializer(many=True)))
    def get(self, request, config_key: str):
        _require_platform(request)
        reveal = _reveal(request)
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


class SchemaListView(APIView):
    """``GET/POST /api/v1/schemas/``: reading needs configs:read, registering ``admin``."""

    required_scopes = {"GET": "configs:read", "POST": "admin"}

    @extend_schema(responses=docs.conditional(docs.ConfigSchemaOutSerializer(many=True)))
    def get(self, request):
        return conditional_response(request, [s.schema_out(o) for o in ConfigSchema.objects.order_by("key")])

    @extend_schema(request=s.SchemaSerializer,
                   responses={200: docs.ConfigSchemaOutSerializer, 201: docs.ConfigSchemaOutSerializer, **docs.errors(412)})
    def post(self, request):
        _require_platform(request)
        data = _valid(s.SchemaSerializer, request.data)
        obj, created = services.schema_set(
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
        _require_platform(request)
        data = _valid(s.SchemaUpdateSerializer, request.data)
        if data.get("key") not in (None, key):
            raise ValidationFailed("the body's key differs from the path's")
        obj, created = services.schema_set(
            key=key, schema=data["schema"], metadata=data.get("metadata"), required=data.get("required", False),
            default_value=data.get("default_value"), expected_version=expected_version(request, data.get("version")),
            actor=request.auth.actor, user_id=request.auth.user_id,
        )
        return Response(s.schema_out(obj), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(responses={204: docs.NO_CONTENT})
    def delete(self, request, key: str):
        _require_platform(request)
        services.schema_delete(key=key, actor=request.auth.actor, user_id=request.auth.user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TenantListView(APIView):
    required_scopes = {"GET": "admin", "POST": "admin"}

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        _require_platform(request)

    @extend_schema(responses=docs.conditional(docs.TenantOutSerializer(many=True)))
    def get(self, request):
        return conditional_response(request, [s.tenant_out(t) for t in Tenant.objects.order_by("slug")])

    @extend_schema(request=s.TenantSerializer, responses={201: docs.TenantOutSerializer, **docs.errors(409)})
    def post(self, request):
        data = _valid(s.TenantSerializer, request.data)
        tenant = services.tenant_create(slug=data["slug"], name=data.get("name", ""), is_active=data["is_active"], actor=request.auth.actor)
        return Response(s.tenant_out(tenant), status=status.HTTP_201_CREATED)


class TenantDetailView(APIView):
    required_scopes = {"GET": "admin", "PATCH": "admin", "DELETE": "admin"}

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        _require_platform(request)

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
        data = _valid(s.TenantPatchSerializer, request.data)
        tenant = services.tenant_update(tenant=self._get(slug), actor=request.auth.actor, **data)
        return Response(s.tenant_out(tenant))

    @extend_schema(responses={204: docs.NO_CONTENT})
    def delete(self, request, slug: str):
        services.tenant_delete(tenant=self._get(slug), actor=request.auth.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EnvironmentListView(APIView):
    required_scopes = {"GET": "configs:read", "POST": "admin"}

    @extend_schema(responses=docs.conditional(docs.EnvironmentOutSerializer(many=True)))
    def get(self, request):
        from ..models import Environment

        return conditional_response(request, [{"slug": e.slug, "name": e.name} for e in Environment.objects.order_by("id")])

    @extend_schema(request=s.EnvironmentSerializer, responses={201: docs.EnvironmentOutSerializer, **docs.errors(409)})
    def post(self, request):
        _require_platform(request)
        data = _valid(s.EnvironmentSerializer, request.data)
        env = services.environment_create(slug=data["slug"], name=data.get("name", ""), actor=request.auth.actor)
        return Response({"slug": env.slug, "name": env.name}, status=status.HTTP_201_CREATED)




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
        entry = services.config_revert(entry=entry, history_id=history_id, actor=request.auth.actor,
                                       user_id=request.auth.user_id)
        response = Response(s.entry_out(entry, reveal=_reveal(request)))
        response["ETag"] = _entry_etag(entry)
        return response


# --- the lean path of the hottest read ------------------------------------------------

_config_key_view = ConfigKeyView.as_view()
_CONFIG_READ_SECONDS = CONFIG_FETCH_SECONDS.labels("config")
_CONFIG_READ_QUERY = frozenset({"environment", "service_name"})


def _config_read_lean(request, key: str) -> HttpResponse | None:
    """``GET /api/v1/config/{key}`` for the case that is nearly every request of the
    fleet: an API key bound to a tenant, holding ``configs:read``, within its rate,
    no ``explain``, a value that exists. It does what the DRF view does for that
    case (the same key lookup, scope, throttle count, tenant, cached resolution,
    body and ETag) without DRF's per-request machinery, which cost as much as the
    read itself. Anything else returns None and the DRF view answers, so every
    refusal and error is exactly the DRF view's."""
    meta = request.META
    query = _plain_query(meta.get("QUERY_STRING", "")) or request.GET
    if not query.keys() <= _CONFIG_READ_QUERY:
        return None
    principal = lean_principal(request, "configs:read")
    if principal is None:
        return None
    environment = query.get("environment") or None
    service_name = query.get("service_name") or ""
    try:
        tenant = tenant_for_principal(principal)
        data = selectors.config_resolve_cached(tenant=tenant, key=key, environment=environment, service_name=service_name)
        if not data["found"]:
            return None
        if admit(principal) is not None:
            return None  # throttled: counted last, so only this case is counted twice (the DRF view answers 429)
        reveal = principal.has_scope("secrets:read")
        etag = _config_read_etag(data, reveal)
        if etag and not_modified(request, etag):  # unchanged: nothing to build, nothing to decrypt
            response = HttpResponseNotModified()
            response["Vary"] = "Accept"
        else:
            body, etag = _config_read_body(key, data, environment, service_name, reveal)
            response = json_response(body)
    except (DomainError, SecretDecryptionError):
        return None  # an unknown tenant or environment, an undecryptable secret: the DRF view words the error
    if etag:
        response["ETag"] = etag
    return response


def _plain_query(raw: str) -> dict[str, str] | None:
    """A query string with nothing to decode (ASCII, no ``%``, ``+`` or ``;``) as a
    dict, the last value of a repeated name winning as in ``QueryDict.get``; None
    for anything else (then ``request.GET`` parses it). Parsing a QueryDict costs
    more function calls than the rest of this read."""
    if not raw or not raw.isascii() or "%" in raw or "+" in raw or ";" in raw:
        return None
    out = {}
    for part in raw.split("&"):
        if part:
            name, _, value = part.partition("=")
            out[name] = value
    return out


@functools.wraps(_config_key_view)  # keeps view_class/cls: the schema and the route matrix see the DRF view
def config_key_route(request, key: str):
    if request.method == "GET":
        started = time.perf_counter()
        response = _config_read_lean(request, key)
        if response is not None:
            _CONFIG_READ_SECONDS.observe(time.perf_counter() - started)
            return response
    return _config_key_view(request, key=key)
