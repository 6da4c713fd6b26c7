"""Seed 001's flag client, copied verbatim from ../shared/seeds/001_*.txt (Pattern 4).

Only the module-level names it reads (``os``, ``requests``, ``CONFIG_SERVICE_URL``)
are provided here; the function body is the seed's own.
"""
import os

import requests

CONFIG_SERVICE_URL = os.getenv("CONFIG_SERVICE_URL", "http://config-service:8082")


def is_feature_enabled(flag_name: str, user_id: str = None) -> bool:
    """Check if a feature flag is enabled for a user"""
    environment = os.getenv("ENVIRONMENT", "development")

    url = f"{CONFIG_SERVICE_URL}/api/v1/feature-flags/evaluate"
    payload = {
        "flag_name": flag_name,
        "environment": environment,
        "user_id": user_id
    }

    response = requests.post(url, json=payload, timeout=2)
    if response.status_code == 200:
        result = response.json()
        return result.get("enabled", False)
    return False
