"""What every flag write shares."""
from __future__ import annotations

import time

from django.core.cache import cache
from django.db import transaction

from core import invalidation

from ..selectors import forget_tenant, generation_key


def generation_bump(tenant_id: int) -> None:
    """After commit: every process recompiles the tenant's flags (its own copy
    dropped now, the others through the shared generation token)."""
    def bump() -> None:
        forget_tenant(tenant_id)
        cache.set(generation_key(tenant_id), str(time.time_ns()), None)
        invalidation.invalidate(generation_key(tenant_id))

    transaction.on_commit(bump)
