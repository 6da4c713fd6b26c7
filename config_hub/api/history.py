"""``GET /api/v1/history/``: who changed what, when, field by field, for every app."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.views import APIView

from core.api.conditional import conditional_response
from core.api.strict import int_param
from core.api.tenancy import request_tenant

from ..history import history_rows
from . import docs


class HistoryView(APIView):
    """``GET /api/v1/history/?resource=config&key=...``: who changed what, when, field by field."""

    query_parameters = frozenset({"resource", "key", "id"})
    read_scope = "events:read"

    @extend_schema(parameters=[OpenApiParameter("resource", str, required=True), OpenApiParameter("key", str),
                               OpenApiParameter("id", int)], responses=docs.conditional(docs.HistoryPageSerializer))
    def get(self, request):
        principal = request.auth
        resource = request.query_params.get("resource") or ""
        object_id = int_param(request, "id", 0, minimum=0) or None
        tenant = request_tenant(request) if not principal.all_tenants else None
        rows = history_rows(resource=resource, key=request.query_params.get("key"), object_id=object_id,
                            tenant_id=tenant.pk if tenant else None, all_tenants=principal.all_tenants)
        return conditional_response(request, {"results": rows})
