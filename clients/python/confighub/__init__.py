"""The config hub's Python client (``pip install ./clients/python``).

    from confighub import ConfigClient

    client = ConfigClient("https://hub.example", api_key, service="user-service",
                          environment="production", cache_dir="/var/cache/confighub")
    client.start()
    client.get("user-service.timeout", 30)
"""
from .client import ConfigClient
from .errors import ConfigHubError, HubUnavailable
from .transport import LongPollTransport, PollingTransport

__all__ = ["ConfigClient", "ConfigHubError", "HubUnavailable", "LongPollTransport", "PollingTransport"]
