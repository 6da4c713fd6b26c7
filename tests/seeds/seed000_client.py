"""Seed 000's ``ManagementSystemsClient``, copied verbatim from ../shared/seeds/000_*.txt."""
# management_systems_client.py
import logging
import os
from typing import Any

import httpx

logger = logging.getLogger(__name__)

class ManagementSystemsClient:
    """Client for interacting with Management Systems microservice."""

    def __init__(
        self,
        base_url: str | None = None,
        auth_token: str | None = None,
        timeout: float = 10.0
    ):
        """Initialize the client."""
        self.base_url = base_url or os.getenv("MANAGEMENT_SYSTEMS_URL", "http://management-systems:8000")
        self.auth_token = auth_token
        self.timeout = timeout
        self.http_client = httpx.AsyncClient(timeout=timeout)

    async def close(self):
        """Close the HTTP client."""
        await self.http_client.aclose()

    def _get_headers(self, tenant_id: str | None = None):
        """Get request headers with authentication and optional tenant ID."""
        headers = {}
        if self.auth_token:
            headers["Authorization"] = f"Bearer {self.auth_token}"

        if tenant_id:
            headers["X-Tenant-ID"] = tenant_id

        return headers

    async def get_tenant_config(
        self,
        tenant_id: str,
        config_key: str
    ) -> dict[str, Any] | None:
        """
        Get tenant-specific configuration.

        Args:
            tenant_id: Tenant identifier
            config_key: Configuration key

        Returns:
            Configuration value or None if not found
        """
        url = f"{self.base_url}/config/tenants/{tenant_id}/configs/{config_key}"
        headers = self._get_headers(tenant_id)

        try:
            response = await self.http_client.get(url, headers=headers)
            response.raise_for_status()
            return response.json().get("config_value")
        except httpx.HTTPStatusError as e:
            if e.response.status_code == 404:
                logger.debug(f"Config {config_key} not found for tenant {tenant_id}")
                return None
            logger.error(f"HTTP error retrieving config {config_key} for tenant {tenant_id}: {str(e)}")
            return None
        except Exception as e:
            logger.error(f"Error retrieving config {config_key} for tenant {tenant_id}: {str(e)}")
            return None

    async def set_tenant_config(
        self,
        tenant_id: str,
        config_key: str,
        config_value: dict[str, Any]
    ) -> bool:
        """
        Set tenant-specific configuration.

        Args:
            tenant_id: Tenant identifier
            config_key: Configuration key
            config_value: Configuration value

        Returns:
            True if successful
        """
        url = f"{self.base_url}/config/tenants/{tenant_id}/configs/{config_key}"
        headers = self._get_headers(tenant_id)

        try:
            response = await self.http_client.put(
                url,
                headers=headers,
                json={"config_value": config_value}
            )
            response.raise_for_status()
            return True
        except Exception as e:
            logger.error(f"Error setting config {config_key} for tenant {tenant_id}: {str(e)}")
            return False

    async def get_config_for_all_tenants(
        self,
        config_key: str
    ) -> list[dict[str, Any]]:
        """
        Get configuration for all tenants (admin only).

        Args:
            config_key: Configuration key

        Returns:
            List of configurations with tenant IDs
        """
        url = f"{self.base_url}/config/configs/{config_key}/all-tenants"
        headers = self._get_headers()

        try:
            response = await self.http_client.get(url, headers=headers)
            response.raise_for_status()
            return response.json()
        except Exception as e:
            logger.error(f"Error retrieving config {config_key} for all tenants: {str(e)}")
            return []
