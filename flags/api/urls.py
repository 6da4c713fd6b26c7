"""Flag routes: /api/v1/feature-flags/... and OFREP at the site root."""
from django.urls import path

from . import views

urlpatterns = [
    path("feature-flags/", views.FlagListCreateView.as_view(), name="flag-list"),
    path("feature-flags/evaluate", views.evaluate_route, name="flag-evaluate"),
    path("feature-flags/evaluate-all", views.EvaluateAllView.as_view(), name="flag-evaluate-all"),
    path("feature-flags/import/unleash", views.ImportUnleashView.as_view(), name="flag-import-unleash"),
    path("feature-flags/<str:flag_id>", views.FlagDetailView.as_view(), name="flag-detail"),
]

root_urlpatterns = [
    path("ofrep/v1/evaluate/flags", views.OfrepBulkView.as_view(), name="ofrep-bulk"),
    path("ofrep/v1/evaluate/flags/<str:key>", views.OfrepSingleView.as_view(), name="ofrep-single"),
]
