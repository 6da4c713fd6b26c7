from django.urls import path

from . import views

# Mounted at /api/v1/ (see config_hub/urls.py).
urlpatterns = [
    path("releases/", views.ReleaseListView.as_view(), name="release-list"),
    path("releases/<str:release_id>", views.ReleaseDetailView.as_view(), name="release-detail"),
    path("releases/<str:release_id>/compare/<str:other_id>", views.ReleaseCompareView.as_view(),
         name="release-compare"),
    path("releases/<str:release_id>/pins/<str:service_name>", views.ReleasePinView.as_view(), name="release-pin"),
    path("releases/<str:release_id>/rollback", views.ReleaseRollbackView.as_view(), name="release-rollback"),
]
