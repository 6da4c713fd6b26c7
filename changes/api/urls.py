from django.urls import path

from . import views

# Mounted at /api/v1/ (see config_hub/urls.py).
urlpatterns = [
    path("change-requests/", views.ChangeRequestListView.as_view(), name="change-request-list"),
    path("change-requests/<str:change_request_id>", views.ChangeRequestDetailView.as_view(), name="change-request-detail"),
    path("change-requests/<str:change_request_id>/approve", views.ApproveView.as_view(), name="change-request-approve"),
    path("change-requests/<str:change_request_id>/decline", views.DeclineView.as_view(), name="change-request-decline"),
    path("change-requests/<str:change_request_id>/apply", views.ApplyView.as_view(), name="change-request-apply"),
    path("change-requests/<str:change_request_id>/cancel", views.CancelView.as_view(), name="change-request-cancel"),
    path("change-requests/<str:change_request_id>/refresh", views.RefreshView.as_view(), name="change-request-refresh"),
    path("environments/<str:environment>/policy", views.EnvironmentPolicyView.as_view(), name="environment-policy"),
]
