"""A logging filter that keeps secret values out of every log line.

Services never log a secret's value on purpose; this filter is the second line of
defence: any string registered with :func:`register_secret` during the process's
life is replaced with ``[REDACTED]`` in each record that passes a handler.
"""
from __future__ import annotations

import logging
import threading

_lock = threading.Lock()
_secrets: set[str] = set()
_MAX = 10_000


def register_secret(value: str) -> None:
    """Remember a plain secret value so that no log line can carry it."""
    if not value or len(value) < 4:
        return
    with _lock:
        if len(_secrets) >= _MAX:
            _secrets.clear()
        _secrets.add(value)


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in list(_secrets):
            if secret in redacted:
                redacted = redacted.replace(secret, "[REDACTED]")
        if redacted is not message and redacted != message:
            record.msg, record.args = redacted, ()
        return True
