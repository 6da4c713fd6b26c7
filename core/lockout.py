"""Admin and token login lockout (django-axes): who is locked, and from which address.

Two rules, both within AXES_COOLOFF_TIME:
- targeted guessing: AXES_FAILURE_LIMIT failures for one username from one
  address lock that (username, address) pair; the operator logging in from
  anywhere else is not affected;
- spraying: AXES_IP_FAILURE_LIMIT failures from one address, across any
  usernames, lock that address for every username.

The address is the TCP peer (REMOTE_ADDR) unless TRUSTED_PROXY_COUNT says how
many reverse proxies in front of the hub append to X-Forwarded-For; then it is
the address the outermost trusted proxy saw. A client cannot choose it: entries
it adds itself are to the left of what the proxies append.
"""
from __future__ import annotations

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum


class LockoutHandler(AxesDatabaseHandler):
    """Axes' database handler with two limits: one per (username, address), a
    higher one per address (spraying). Axes itself has one limit for every
    lockout parameter, which would either never stop spraying or lock a whole
    office after five typos."""

    def get_failures(self, request, credentials=None) -> int:
        attempts = AccessAttempt.objects.filter(ip_address=request.axes_ip_address)
        if settings.AXES_COOLOFF_TIME is not None:
            attempts = attempts.filter(attempt_time__gte=get_cool_off_threshold(request))
        from_address = attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0
        username = get_client_username(request, credentials)
        for_user = attempts.filter(username=username).aggregate(n=Sum("failures_since_start"))["n"] or 0
        if from_address >= settings.AXES_IP_FAILURE_LIMIT:
            return max(for_user, get_failure_limit(request, credentials))
        return for_user
