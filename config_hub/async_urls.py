"""The routes of the ASGI door (config_hub/asgi.py): async views, each waiting
listener a coroutine. Every other request goes to the WSGI application (config_hub.urls)."""
from django.urls import path

from events.api import stream
from flags.api.views import ofrep_stream

urlpatterns = [
    path("api/v1/stream", stream.stream_view, name="event-stream"),
    path("ofrep/v1/stream", ofrep_stream.ofrep_stream_view, name="ofrep-stream"),
    # Only a request with ``wait`` comes here (config_hub.asgi.waits); the others are the WSGI app's.
    path("api/v1/events/", stream.long_poll_view, name="event-list"),
]
