"""ASGI entry point: the whole hub on one base URL (``gunicorn -c config_hub/gunicorn.conf.py
config_hub.asgi:application`` with uvicorn workers, or ``uvicorn config_hub.asgi:application``).

Two doors in one process (docs/operations.md, "How the hub is served"):
- the change stream (``/api/v1/stream``) is Django's ASGI handler: an async view,
  each listener a coroutine, no thread held;
- every other route is the WSGI application run on a pool of ``GUNICORN_THREADS``
  threads (a2wsgi), exactly as gunicorn's gthread workers ran it: the synchronous
  API keeps its persistent database connections per thread (Django's ASGI handler
  would open one per request) and its measured speed.
"""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config_hub.settings.base")

import django  # noqa: E402
from a2wsgi import WSGIMiddleware  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

django.setup(set_prefix=False)

# The middleware of the async routes: only natively async ones. Django runs any
# other middleware in a thread of the request's own executor, which would then
# live as long as the stream: one idle thread per listener. The stream needs
# none of the others (no session, CSRF, login or HTML; its view sets its headers
# and the DRF gate answers its errors, database ones included).
ASYNC_MIDDLEWARE = ("corsheaders.middleware.CorsMiddleware",)


class AsyncRoutesHandler(ASGIHandler):
    """Django's ASGI handler with :data:`ASYNC_MIDDLEWARE` only, and without a thread
    of its own per request: Django opens a per-request executor (a thread, for the
    request's signals) that would live as long as the stream; here those short
    calls share asgiref's one thread. The stream's database work runs on its hub's
    threads (events.stream)."""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"only HTTP is served here, not {scope['type']}")
        await self.handle(scope, receive, send)

    def load_middleware(self, is_async=False):
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = [name for name in full if name in ASYNC_MIDDLEWARE]
        try:
            super().load_middleware(is_async=is_async)
        finally:
            settings.MIDDLEWARE = full


django_asgi = AsyncRoutesHandler()
django_wsgi = WSGIMiddleware(get_wsgi_application(), workers=int(os.environ.get("GUNICORN_THREADS", "16")))

# The routes served by async views (an exact path: the stream takes no suffix).
ASYNC_PATHS = frozenset({"/api/v1/stream"})


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http" and scope["path"] in ASYNC_PATHS:
        return await django_asgi(scope, receive, send)
    return await django_wsgi(scope, receive, send)
