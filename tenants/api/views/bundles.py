"""A service's bundle of resolved configs: ``GET /api/v1/config/service/{name}``."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.views import APIView

from core.api.conditional import conditional_response, not_modified
from core.api.lean import json_response, lean_route, lean_tenant, not_modified_response
from core.api.tenancy import request_tenant
from core.metrics import CONFIG_FETCH_SECONDS
from tenants import selectors
from tenants.api import docs

from .common import ENV_PARAM, reveal_allowed, timed


class ServiceBundleView(APIView):
    """``GET /api/v1/config/service/{service_name}?environment=`` (a service loading its configs at startup)."""

    query_parameters = frozenset({"environment"})
    read_scope = "configs:read"

    @extend_schema(parameters=[ENV_PARAM], responses=docs.conditional(docs.BundleRowSerializer(many=True)))
    @timed("bundle")
    def get(self, request, service_name: str):
        tenant = request_tenant(request)
        environment = request.query_params.get("environment") or None
        bundle = selectors.config_bundle_cached(tenant=tenant, environment=environment, service_name=service_name)
        reveal = reveal_allowed(request)
        etag = bundle.etag(reveal=reveal)
        if not_modified(request, etag):  # no decryption for an unchanged bundle
            return conditional_response(request, None, etag=etag)
        return conditional_response(request, bundle.body(reveal=reveal), etag=etag)


# --- the lean route of the bundle read (core.api.lean) ---------------------------------

_bundle_view = ServiceBundleView.as_view()


@lean_route(_bundle_view, method="GET", scope="configs:read", query=("environment",),
            timer=CONFIG_FETCH_SECONDS.labels("bundle"))
def bundle_route(request, principal, query, service_name: str):
    """``GET /api/v1/config/service/{name}`` for the common case (see ``core.api.lean``):
    the same tenant, cached bundle, body and ETag as ServiceBundleView, which answers
    anything else."""
    tenant = lean_tenant(request, principal)
    bundle = selectors.config_bundle_cached(tenant=tenant, environment=query.get("environment") or None,
                                            service_name=service_name)

    def answer():
        reveal = principal.has_scope("secrets:read")
        etag = bundle.etag(reveal=reveal)
        if not_modified(request, etag):  # no decryption for an unchanged bundle
            return not_modified_response(etag)
        return json_response(bundle.body(reveal=reveal) if reveal else bundle.masked_json, etag=etag)

    return answer
