from django.urls import path

from .views import bundles, configs, environments, schemas, tenant_configs, tenants

# Mounted at /api/v1/ (see config_hub/urls.py).
urlpatterns = [
    path("config/", configs.ConfigCreateView.as_view(), name="config-create"),
    path("config/service/<str:service_name>", bundles.bundle_route, name="config-bundle"),
    path("config/<str:key>", configs.config_key_route, name="config-key"),
    path("configs/", configs.ConfigListView.as_view(), name="config-list"),
    path("configs/<int:config_id>", configs.ConfigEntryDetailView.as_view(), name="config-detail"),
    path("configs/<int:config_id>/revert", configs.ConfigRevertView.as_view(), name="config-revert"),
    path("schemas/", schemas.SchemaListView.as_view(), name="schema-list"),
    path("schemas/<str:key>", schemas.SchemaDetailView.as_view(), name="schema-detail"),
    path("tenants/", tenants.TenantListView.as_view(), name="tenant-list"),
    path("tenants/<str:slug>", tenants.TenantDetailView.as_view(), name="tenant-detail"),
    path("environments/", environments.EnvironmentListView.as_view(), name="environment-list"),
    path("environments/compare", environments.EnvironmentCompareView.as_view(), name="environment-compare"),
]

# A tenant's configs addressed by tenant slug in the path (the static-token clients), mounted at /config/.
tenant_config_urlpatterns = [
    path("tenants/<str:tenant_id>/configs/<str:config_key>", tenant_configs.TenantConfigView.as_view(),
         name="tenant-config"),
    path("configs/<str:config_key>/all-tenants", tenant_configs.AllTenantsConfigView.as_view(),
         name="all-tenants-config"),
]
