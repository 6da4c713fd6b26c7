from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.urls import include, path

urlpatterns = [
    path("health", lambda request: HttpResponse("ok")),
    path("accounts/login/", auth_views.LoginView.as_view(template_name="op_login.html"), name="login"),
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
]
