"""Watch and webhooks routes (API.md "Changes and audit"; the history route is config_hub's)."""
from __future__ import annotations

import time

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.conditional import conditional_response
from core.api.strict import StrictSerializer, int_param, validated_body
from core.api.tenancy import request_tenant
from core.errors import NotFound, error_body
from core.validators import service_url_field
from events.api import docs

from .. import selectors, services, stream, watch
from ..messages import event_payload
from ..models import RESOURCE_TYPES, WebhookDelivery, WebhookSubscription


class EventListView(APIView):
    """``GET /api/v1/events/?after=<id>&wait=<s>``: events after a cursor; with ``wait``, a long poll."""

    query_parameters = frozenset({"after", "wait", "limit", "tenant"})
    read_scope = "events:read"

    @extend_schema(parameters=[OpenApiParameter("after", int), OpenApiParameter("wait", int), OpenApiParameter("limit", int)],
                   responses={200: docs.EventPageSerializer})
    def get(self, request):
        principal = request.auth
        after = int_param(request, "after", 0)
        wait = int_param(request, "wait", 0, maximum=settings.EVENTS_MAX_WAIT)
        limit = int_param(request, "limit", 100, minimum=1, maximum=1000)
        tenant_filter = None
        if principal.all_tenants and (request.query_params.get("tenant") or request.META.get("HTTP_X_TENANT_ID")):
            tenant_filter = request_tenant(request, request.query_params.get("tenant")).pk
        elif not principal.all_tenants:
            request_tenant(request)

        if wait > 0 and getattr(request, "hub_waits", False):
            # Served under ASGI: the stream's hub holds the wait (events.api.stream.long_poll_view).
            return Response(stream.Wait(visibility=(principal.tenant_id, principal.all_tenants, tenant_filter),
                                        after=after, seconds=wait, limit=limit,
                                        caller=f"{principal.kind}:{principal.ident}"))

        def events_now():
            return selectors.events_after(tenant_id=principal.tenant_id, all_tenants=principal.all_tenants,
                                          after=after, limit=limit, tenant_filter=tenant_filter)

        if wait <= 0:
            events = events_now()
        else:
            try:
                with watch.held_wait(f"{principal.kind}:{principal.ident}"), watch.Waiter() as waiter:
                    deadline = time.monotonic() + wait
                    while True:
                        mark = waiter.mark()
                        events = events_now()
                        remaining = deadline - time.monotonic()
                        if events or remaining <= 0:
                            break
                        waiter.wait(mark, remaining)
            except watch.WaitRefused as exc:
                return Response(error_body(exc.code, exc.message), status=exc.status,
                                headers={"Retry-After": str(exc.retry_after)})
        cursor = events[-1].pk if events else after
        return Response({"events": [event_payload(e) for e in events], "cursor": cursor})


class WebhookFilterSerializer(StrictSerializer):
    """The filter as the subscription's answer shows it (``null``: no filter on that field)."""

    resource_types = serializers.ListField(child=serializers.ChoiceField(choices=RESOURCE_TYPES), required=False,
                                           allow_null=True)
    key_prefix = serializers.CharField(max_length=200, required=False, allow_blank=True, allow_null=True)
    environment = serializers.CharField(max_length=64, required=False, allow_blank=True, allow_null=True)
    service_name = serializers.CharField(max_length=100, required=False, allow_blank=True, allow_null=True)


class WebhookSerializer(StrictSerializer):
    """The filter fields at the top level, or in ``filter`` (the answer's shape), not both."""

    url = service_url_field()
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    resource_types = serializers.ListField(child=serializers.ChoiceField(choices=RESOURCE_TYPES), required=False,
                                           default=list)
    key_prefix = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    environment = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    service_name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    filter = WebhookFilterSerializer(required=False)
    is_active = serializers.BooleanField(required=False)

    def validate(self, attrs):
        nested = attrs.pop("filter", None)
        if nested is not None:
            both = [name for name in nested if name in self.initial_data]
            if both:
                raise serializers.ValidationError({name: ["given both here and in 'filter'"] for name in both})
            attrs.update({name: ([] if name == "resource_types" else "") if value is None else value
                          for name, value in nested.items()})
        if attrs.get("environment"):
            problems = services.webhook_filter_problems(environment=attrs["environment"])
            if problems:
                raise serializers.ValidationError(problems)
        return attrs


def _subscription(request, webhook_id) -> WebhookSubscription:
    tenant = request_tenant(request)
    sub = WebhookSubscription.objects.select_related("tenant").filter(pk=webhook_id, tenant_id=tenant.pk).first()
    if sub is None:
        raise NotFound("webhook subscription not found")
    return sub


class WebhookListView(APIView):
    required_scopes = {"GET": "events:read", "POST": "admin"}

    @extend_schema(responses=docs.conditional(docs.WebhookOutSerializer(many=True)))
    def get(self, request):
        tenant = request_tenant(request)
        subs = WebhookSubscription.objects.filter(tenant_id=tenant.pk).order_by("id")
        return conditional_response(request, [selectors.subscription_out(s) for s in subs])

    @extend_schema(request=WebhookSerializer, responses={201: docs.WebhookOutSerializer})
    def post(self, request):
        data = validated_body(WebhookSerializer, request.data)
        tenant = request_tenant(request)
        sub = services.webhook_create(tenant=tenant, url=data["url"], resource_types=data["resource_types"],
                                      key_prefix=data["key_prefix"], environment=data["environment"],
                                      service_name=data["service_name"], description=data["description"],
                                      actor=request.auth.actor, user_id=request.auth.user_id)
        # The signing secret is shown once, on creation.
        return Response(selectors.subscription_out(sub, secret=sub.secret), status=status.HTTP_201_CREATED)


class WebhookDetailView(APIView):
    required_scopes = {"GET": "events:read", "PUT": "admin", "PATCH": "admin", "DELETE": "admin"}

    @extend_schema(responses=docs.conditional(docs.WebhookOutSerializer))
    def get(self, request, webhook_id: int):
        return conditional_response(request, selectors.subscription_out(_subscription(request, webhook_id)))

    @extend_schema(request=WebhookSerializer, responses={200: docs.WebhookOutSerializer})
    def put(self, request, webhook_id: int):
        return self._update(request, webhook_id, partial=False)

    @extend_schema(request=WebhookSerializer, responses={200: docs.WebhookOutSerializer})
    def patch(self, request, webhook_id: int):
        return self._update(request, webhook_id, partial=True)

    def _update(self, request, webhook_id: int, *, partial: bool):
        sub = _subscription(request, webhook_id)
        data = validated_body(WebhookSerializer, request.data, partial=partial)
        sub = services.webhook_update(subscription=sub, actor=request.auth.actor, user_id=request.auth.user_id, **data)
        return Response(selectors.subscription_out(sub))

    @extend_schema(responses={204: docs.NO_CONTENT})
    def delete(self, request, webhook_id: int):
        services.webhook_delete(subscription=_subscription(request, webhook_id), actor=request.auth.actor,
                                user_id=request.auth.user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeliveryListView(APIView):
    read_scope = "events:read"

    @extend_schema(responses=docs.conditional(docs.DeliveryOutSerializer(many=True)))
    def get(self, request, webhook_id: int):
        sub = _subscription(request, webhook_id)
        rows = []
        for d in WebhookDelivery.objects.filter(subscription=sub).prefetch_related("attempt_log").order_by("-id")[:200]:
            rows.append({
                "id": d.id, "event_id": d.event_id, "status": d.status, "attempts": d.attempts,
                "response_code": d.last_response_code, "last_error": d.last_error or None,
                "next_attempt_at": d.next_attempt_at.isoformat() if d.status in ("pending", "retrying") else None,
                "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
                "attempt_log": [{"at": a.at.isoformat(), "response_code": a.response_code, "error": a.error or None,
                                 "duration_ms": round(a.duration_ms, 1)} for a in d.attempt_log.all()],
            })
        return conditional_response(request, rows)
