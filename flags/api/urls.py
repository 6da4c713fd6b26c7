"""Flag routes: /api/v1/feature-flags/...; OFREP and the Unleash client API at the site root."""
from django.urls import path

from .views import evaluate, flags, ofrep, ofrep_stream, unleash

urlpatterns = [
    path("feature-flags/", flags.FlagListCreateView.as_view(), name="flag-list"),
    path("feature-flags/evaluate", evaluate.evaluate_route, name="flag-evaluate"),
    path("feature-flags/evaluate-all", evaluate.EvaluateAllView.as_view(), name="flag-evaluate-all"),
    path("feature-flags/import/unleash", flags.ImportUnleashView.as_view(), name="flag-import-unleash"),
    path("feature-flags/<str:flag_id>", flags.FlagDetailView.as_view(), name="flag-detail"),
]

root_urlpatterns = [
    path("ofrep/v1/evaluate/flags", ofrep.OfrepBulkView.as_view(), name="ofrep-bulk"),
    path("ofrep/v1/evaluate/flags/<str:key>", ofrep.OfrepSingleView.as_view(), name="ofrep-single"),
    path("ofrep/v1/stream", ofrep_stream.ofrep_stream_view, name="ofrep-stream"),
    path("unleash/<str:environment>/api/client/features", unleash.UnleashFeaturesView.as_view(), name="unleash-features"),
    path("unleash/<str:environment>/api/client/register", unleash.UnleashRegisterView.as_view(), name="unleash-register"),
    path("unleash/<str:environment>/api/client/metrics", unleash.UnleashMetricsView.as_view(), name="unleash-metrics"),
]
