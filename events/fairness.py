"""Fairness between tenants: deliveries in flight per tenant, capped at
WEBHOOK_TENANT_CONCURRENCY across every worker, so one tenant's slow receivers
never hold every worker."""
from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django_redis import get_redis_connection

logger = logging.getLogger(__name__)

# A sorted set per tenant: member = one delivery in flight, score = when its slot
# expires (a worker killed mid-delivery frees it by then).
_SLOT_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
"""
_local_slots: dict[int, dict[str, float]] = {}
_local_lock = threading.Lock()


def _slot_key(tenant_id: int) -> str:
    return f"ch:webhook-slots:{tenant_id}"


def tenant_slot_take(tenant_id: int, token: str, hold: float) -> bool:
    """Take one of the tenant's delivery slots for at most ``hold`` seconds. Shared by
    every worker through Redis; per process without Redis (the embedded default runs
    one worker). Redis down: the delivery goes ahead (fairness is lost, not events)."""
    cap = settings.WEBHOOK_TENANT_CONCURRENCY
    if cap <= 0 or settings.CELERY_TASK_ALWAYS_EAGER:  # eager: one delivery at a time, in the caller
        return True
    now = time.time()
    if settings.REDIS_URL:
        try:
            client = get_redis_connection("default")
            return bool(client.eval(_SLOT_TAKE, 1, _slot_key(tenant_id), now, now + hold, cap, token, int(hold * 1000) + 1000))
        except Exception:  # noqa: BLE001
            logger.warning("webhook slots: redis unavailable, delivering without the per-tenant cap")
            return True
    with _local_lock:
        held = {t: exp for t, exp in _local_slots.get(tenant_id, {}).items() if exp > now}
        if len(held) >= cap:
            _local_slots[tenant_id] = held
            return False
        held[token] = now + hold
        _local_slots[tenant_id] = held
        return True


def tenant_slot_release(tenant_id: int, token: str) -> None:
    if settings.REDIS_URL:
        try:
            get_redis_connection("default").zrem(_slot_key(tenant_id), token)
        except Exception:  # noqa: BLE001 - the slot expires by itself
            pass
        return
    with _local_lock:
        _local_slots.get(tenant_id, {}).pop(token, None)
