"""Waiting for something a real worker or process does, without sleeping blindly."""
from __future__ import annotations

import time
from typing import Callable


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, step: float = 0.2) -> bool:
    """True as soon as ``predicate()`` is truthy; False if ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False
