"""Seed 001's config patterns 1-3, copied verbatim from ../shared/seeds/001_*.txt.

Module-level names they read (``os``, ``requests``, ``time``, ``CONFIG_SERVICE_URL``)
are provided here; the code is the seed's own.
"""
import os
import time

import requests

CONFIG_SERVICE_URL = os.getenv("CONFIG_SERVICE_URL", "http://config-service:8082")

def get_config(key: str, environment: str = None, service_name: str = None):
    """Fetch configuration from config service"""
    if not environment:
        environment = os.getenv("ENVIRONMENT", "development")
    if not service_name:
        service_name = os.getenv("SERVICE_NAME", "user-service")

    url = f"{CONFIG_SERVICE_URL}/api/v1/config/{key}"
    params = {"environment": environment, "service_name": service_name}

    response = requests.get(url, params=params)
    if response.status_code == 200:
        config = response.json()
        return config["value"]
    else:
        raise Exception(f"Failed to fetch config: {key}")


class ConfigClient:
    def __init__(self, config_service_url: str, cache_ttl: int = 300):
        self.config_service_url = config_service_url
        self.cache_ttl = cache_ttl
        self._cache = {}
        self._cache_times = {}

    def get_config(self, key: str, environment: str, service_name: str) -> str | None:
        cache_key = f"{key}:{environment}:{service_name}"

        # Check cache
        if cache_key in self._cache:
            cache_age = time.time() - self._cache_times.get(cache_key, 0)
            if cache_age < self.cache_ttl:
                return self._cache[cache_key]

        # Fetch from config service
        url = f"{self.config_service_url}/api/v1/config/{key}"
        params = {"environment": environment, "service_name": service_name}

        try:
            response = requests.get(url, params=params, timeout=2)
            if response.status_code == 200:
                config = response.json()
                value = config["value"]
                # Cache it
                self._cache[cache_key] = value
                self._cache_times[cache_key] = time.time()
                return value
        except Exception as e:
            print(f"Config fetch failed: {e}")
            # Return cached value if available, even if expired
            return self._cache.get(cache_key)

        return None


# In your service's startup code
async def load_configurations():
    """Load all configurations for this service at startup"""
    service_name = os.getenv("SERVICE_NAME")
    environment = os.getenv("ENVIRONMENT", "development")

    url = f"{CONFIG_SERVICE_URL}/api/v1/config/service/{service_name}"
    params = {"environment": environment}

    response = requests.get(url, params=params)
    if response.status_code == 200:
        configs = response.json()
        # Convert to dict for easy access
        config_dict = {cfg["key"]: cfg["value"] for cfg in configs}
        return config_dict
    return {}
