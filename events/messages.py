"""What subscribers and watchers receive: an event's JSON shape, and the Standard
Webhooks secrets and signature of a webhook's body."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as pysecrets

from .models import Event


def new_secret() -> str:
    return "whsec_" + base64.b64encode(pysecrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` (Standard Webhooks)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def event_payload(event: Event) -> dict:
    """The event as subscribers and watchers see it (never a secret value: services
    put only ``value_changed`` for secrets into ``data``)."""
    return {
        "id": event.pk,
        "type": f"{event.resource_type}.{event.action}",
        "timestamp": event.created_at.isoformat() if event.created_at else None,
        "data": {
            "tenant": event.tenant_slug or None,
            "resource_type": event.resource_type,
            "action": event.action,
            "key": event.key,
            "environment": event.environment or None,
            "service_name": event.service_name or None,
            "version": event.version,
            "actor": event.actor,
            "details": event.data,
        },
    }
