"""URL map. Every API route lives under /api/v1/ except the paths existing clients already call
(/config/..., /services/{name}, /heartbeat, /ofrep/..., /health, /metrics)."""
from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from events.api.urls import root_urlpatterns as events_root_urls
from flags.api.urls import root_urlpatterns as flags_root_urls
from registry.api.urls import root_urlpatterns as registry_root_urls
from tenants.api.urls import tenant_config_urlpatterns

from . import ops, sso
from .api.docs_pages import DocsView, RedocView
from .api.history import HistoryView
from .api.tokens import StrictTokenObtainPairSerializer, StrictTokenRefreshSerializer

api_v1 = [
    path("auth/token/", TokenObtainPairView.as_view(serializer_class=StrictTokenObtainPairSerializer), name="token-obtain"),
    path("auth/token/refresh/", TokenRefreshView.as_view(serializer_class=StrictTokenRefreshSerializer),
         name="token-refresh"),
    path("", include("tenants.api.urls")),
    path("", include("flags.api.urls")),
    path("", include("registry.api.urls")),
    path("", include("events.api.urls")),
    path("", include("releases.api.urls")),
    path("", include("changes.api.urls")),
    path("history/", HistoryView.as_view(), name="history"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    # Single sign-on (config_hub/sso.py): 404 unless OIDC_RP_CLIENT_ID is set.
    path("oidc/authenticate/", sso.SsoStartView.as_view(), name="oidc_authentication_init"),
    path("oidc/callback/", sso.SsoCallbackView.as_view(), name="oidc_authentication_callback"),
    path("api/v1/", include(api_v1)),
    path("config/", include(tenant_config_urlpatterns)),
    path("health", ops.health, name="health"),
    path("metrics", ops.metrics, name="metrics"),
    path("", include(flags_root_urls)),
    path("", include(registry_root_urls)),
    path("", include(events_root_urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start script from /docs?script= (no inline script: CSP).
    path("docs", DocsView.as_view(url_name="schema"), name="docs"),
    path("docs/", RedirectView.as_view(pattern_name="docs", permanent=True)),
    path("redoc", RedocView.as_view(url_name="schema"), name="redoc"),
    # No public site: "/" leads operators to the admin (which asks them to log in).
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False), name="home"),
]

if settings.BENCH_ROUTES:
    from .bench_views import bare

    urlpatterns.append(path("bench/bare", bare, name="bench-bare"))

handler400 = "config_hub.ops.bad_request"
handler404 = "config_hub.ops.not_found"
handler500 = "config_hub.ops.server_error"
