"""Registry routes: /api/v1/registry/... and, at the root, /services/{name} and /heartbeat (the service-token routes)."""
from django.urls import path

from . import views

urlpatterns = [
    path("registry/register", views.RegisterView.as_view(), name="registry-register"),
    path("registry/health", views.HealthView.as_view(), name="registry-health"),
    path("registry/healthy", views.HealthyListView.as_view(), name="registry-healthy"),
    path("registry/instances/<int:instance_id>", views.InstanceDetailView.as_view(), name="registry-instance"),
    path("registry/<str:service_name>", views.discover_route, name="registry-discover"),
]

root_urlpatterns = [
    path("services/<str:service_name>", views.ServiceUrlView.as_view(), name="service-url"),
    path("heartbeat", views.heartbeat_route, name="heartbeat"),
]
