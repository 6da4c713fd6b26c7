"""The API docs' pages (Swagger UI at /docs, Redoc at /redoc): without credentials, a
browser gets a page that links to the admin's login (and comes back here after it)
instead of a bare JSON 401. The schema and Swagger UI's script keep their JSON errors."""
from __future__ import annotations

from urllib.parse import quote

from django.http import HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated, PermissionDenied

_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Config hub API docs: sign in</title></head><body style="font-family: sans-serif; margin: 2em; max-width: 40em">
<h1>Config hub API docs</h1><p>The API docs need credentials, as the API does.</p>
<p><a id="login-link" href="{}">Log in to the admin</a>, then come back to the docs; or send an API key
(<code>Authorization: ApiKey chk_...</code>).</p></body></html>"""


class LoginLinkMixin:
    def handle_exception(self, exc):
        is_page = "script" not in self.request.query_params  # /docs?script= is Swagger UI's start script
        if is_page and isinstance(exc, (NotAuthenticated, AuthenticationFailed, PermissionDenied)):
            login = f"{reverse('admin:login')}?next={quote(self.request.get_full_path())}"
            response = HttpResponse(format_html(_PAGE, login), status=401, content_type="text/html; charset=utf-8")
            response["WWW-Authenticate"] = 'ApiKey realm="config-hub"'
            return response
        return super().handle_exception(exc)


class DocsView(LoginLinkMixin, SpectacularSwaggerSplitView):
    pass


class RedocView(LoginLinkMixin, SpectacularRedocView):
    pass
