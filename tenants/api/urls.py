from django.urls import path

from . import views

# Mounted at /api/v1/ (see config_hub/urls.py).
urlpatterns = [
    path("config/", views.ConfigCreateView.as_view(), name="config-create"),
    path("config/service/<str:service_name>", views.ServiceBundleView.as_view(), name="config-bundle"),
    path("config/<str:key>", views.config_key_route, name="config-key"),
    path("configs/", views.ConfigListView.as_view(), name="config-list"),
    path("configs/<int:config_id>", views.ConfigEntryDetailView.as_view(), name="config-detail"),
    path("configs/<int:config_id>/revert", views.ConfigRevertView.as_view(), name="config-revert"),
    path("schemas/", views.SchemaListView.as_view(), name="schema-list"),
    path("schemas/<str:key>", views.SchemaDetailView.as_view(), name="schema-detail"),
    path("tenants/", views.TenantListView.as_view(), name="tenant-list"),
    path("tenants/<str:slug>", views.TenantDetailView.as_view(), name="tenant-detail"),
    path("environments/", views.EnvironmentListView.as_view(), name="environment-list"),
]

# A tenant's configs addressed by tenant slug in the path (the static-token clients), mounted at /config/.
tenant_config_urlpatterns = [
    path("tenants/<str:tenant_id>/configs/<str:config_key>", views.TenantConfigView.as_view(), name="tenant-config"),
    path("configs/<str:config_key>/all-tenants", views.AllTenantsConfigView.as_view(), name="all-tenants-config"),
]
