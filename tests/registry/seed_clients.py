"""Seed clients copied verbatim from ../shared/seeds/.

Seed 001, Pattern 7 (``register_service``, ``update_health_status``) and
Pattern 5 (``discover_service``, ``get_all_healthy_services``); seed 004
(``get_service_url``, ``heartbeat_loop``). The names they read from their own
modules (``app``, ``settings``, ``logger``, ``CONFIG_SERVICE_URL``,
``measure_health_check_time``, ``is_service_healthy``) are provided here; the
function bodies are the seeds' own, unchanged.
"""
import asyncio
import logging
import os
from types import SimpleNamespace

import httpx
import requests

logger = logging.getLogger("seed")
CONFIG_SERVICE_URL = os.getenv("CONFIG_SERVICE_URL", "http://config-service:8082")
settings = SimpleNamespace(service_id=0, registry_url="", jwt_secret="")


class _App:
    def on_event(self, _name):
        return lambda fn: fn


app = _App()


def measure_health_check_time() -> float:
    return 12.5


def is_service_healthy() -> bool:
    return True


# --- seed 001, Pattern 7 ------------------------------------------------------------

@app.on_event("startup")
async def register_service():
    """Register this service in the service registry"""
    service_name = os.getenv("SERVICE_NAME", "user-service")
    service_url = os.getenv("SERVICE_URL", "http://user-service:8080")
    health_url = f"{service_url}/health"
    api_key = os.getenv("CONFIG_SERVICE_API_KEY")

    url = f"{CONFIG_SERVICE_URL}/api/v1/registry/register"
    headers = {"Authorization": f"ApiKey {api_key}"}
    payload = {
        "service_name": service_name,
        "service_url": service_url,
        "health_check_url": health_url,
        "metadata": {
            "version": os.getenv("SERVICE_VERSION", "1.0.0"),
            "region": os.getenv("REGION", "us-east-1")
        }
    }

    response = requests.post(url, json=payload, headers=headers)
    if response.status_code == 200:
        logger.info(f"Service {service_name} registered successfully")

# Periodic health updates
async def update_health_status():
    """Update service health status periodically"""
    while True:
        await asyncio.sleep(30)  # Every 30 seconds

        service_name = os.getenv("SERVICE_NAME")
        response_time = measure_health_check_time()
        status = "healthy" if is_service_healthy() else "unhealthy"

        url = f"{CONFIG_SERVICE_URL}/api/v1/registry/health"
        headers = {"Authorization": f"ApiKey {os.getenv('CONFIG_SERVICE_API_KEY')}"}
        payload = {
            "service_name": service_name,
            "status": status,
            "response_time": response_time
        }

        requests.put(url, json=payload, headers=headers)


# --- seed 001, Pattern 5 ------------------------------------------------------------

def discover_service(service_name: str) -> str | None:
    """Discover the URL of a healthy service instance"""
    url = f"{CONFIG_SERVICE_URL}/api/v1/registry/{service_name}"

    response = requests.get(url, timeout=2)
    if response.status_code == 200:
        service = response.json()
        if service.get("status") == "healthy":
            return service.get("service_url")
    return None

def get_all_healthy_services() -> list:
    """Get all healthy services"""
    url = f"{CONFIG_SERVICE_URL}/api/v1/registry/healthy"

    response = requests.get(url, timeout=2)
    if response.status_code == 200:
        data = response.json()
        return data.get("services", [])
    return []


# --- seed 004 -----------------------------------------------------------------------

async def get_service_url(service_name: str) -> str:
    async with httpx.AsyncClient() as client:
        response = await client.get(
            f"{settings.registry_url}/services/{service_name}"
        )
        return response.json()["url"]


async def heartbeat_loop():
    """Send heartbeat every 30 seconds"""
    while True:
        try:
            async with httpx.AsyncClient() as client:
                await client.post(
                    f"{settings.registry_url}/heartbeat",
                    json={"service_id": settings.service_id}
                )
        except Exception as e:
            logger.error(f"Heartbeat failed: {e}")

        await asyncio.sleep(30)
