"""What the client raises."""
from __future__ import annotations


class ConfigHubError(Exception):
    """The hub answered with an error the client cannot work around (a bad key, a
    scope it lacks, bad input). ``status`` is the HTTP status, ``code`` the hub's
    ``error.code``."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class HubUnavailable(Exception):
    """The hub could not be reached, or answered 429/5xx. ``retry_after``: the
    seconds its ``Retry-After`` asked for, if it sent one."""

    def __init__(self, message: str, retry_after: float | None = None, *, status: int | None = None, code: str = ""):
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status  # None: not reached at all
        self.code = code
