"""Events and webhooks, mounted at /api/v1/."""
from django.urls import path

from . import stream, views

urlpatterns = [
    path("events/", views.EventListView.as_view(), name="event-list"),
    path("stream", stream.stream_view, name="event-stream"),
    path("webhooks/", views.WebhookListView.as_view(), name="webhook-list"),
    path("webhooks/<int:webhook_id>", views.WebhookDetailView.as_view(), name="webhook-detail"),
    path("webhooks/<int:webhook_id>/deliveries/", views.DeliveryListView.as_view(), name="webhook-deliveries"),
]
root_urlpatterns: list = []
