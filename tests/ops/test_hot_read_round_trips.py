"""A cached read costs no round trip: not one database query, not one Redis command.

Every hot read of the fleet (config reads with a tenant-bound key and with a
platform key naming the tenant, the 304 revalidation, a service's bundle, flag
evaluations, OFREP bulk, discovery) is sent a few times to warm what each process
keeps, then twenty times more while every database query and every command sent
to Redis by the request's thread is counted. The throttle counts every one of
those requests (its lease on the shared counter, core/api/throttling.py), the
API key is checked, the tenant, the generation tokens and the answer come from
the process: the counts stay at zero.
"""
from __future__ import annotations

import threading
import time

import pytest
from django.db import connection
from redis.connection import AbstractConnection

from core import invalidation
from tests import factories as make

pytestmark = pytest.mark.django_db


class RoundTrips:
    """Counts the database queries and the Redis commands of this thread."""

    def __init__(self, monkeypatch):
        self.queries: list[str] = []
        self.redis: list[bytes] = []
        self._thread = threading.get_ident()
        send = AbstractConnection.send_packed_command

        def counting_send(conn, command, *args, **kwargs):
            if threading.get_ident() == self._thread and self.counting:
                self.redis.append(command if isinstance(command, bytes) else b"".join(command))
            return send(conn, command, *args, **kwargs)

        monkeypatch.setattr(AbstractConnection, "send_packed_command", counting_send)
        self.counting = False

    def _query(self, execute, sql, params, many, context):
        self.queries.append(sql)
        return execute(sql, params, many, context)

    def count(self, send, times: int = 20) -> tuple[list[str], list[bytes]]:
        self.queries, self.redis = [], []
        self.counting = True
        try:
            with connection.execute_wrapper(self._query):
                for _ in range(times):
                    send()
        finally:
            self.counting = False
        return self.queries, self.redis


@pytest.fixture
def fleet(tenant, environments, django_capture_on_commit_callbacks):
    production = environments["production"]
    with django_capture_on_commit_callbacks(execute=True):
        make.config(tenant, "db.url", "postgres://db")
        make.config(tenant, "db.url", "postgres://prod-svc", environment=production, service_name="svc")
        make.config(tenant, "svc.timeout", 30, service_name="svc")
        make.secret(tenant, "svc.password", "hot-read-secret-7c")
        make.flag(tenant, "checkout", environment=production, is_enabled=True, rollout_percentage=50)
        make.flag(tenant, "search", environment=production, is_enabled=True)
        make.instance(tenant, "svc", "http://127.0.0.1:9411")
    return production


def _requests(tenant, make_key, client_for):
    """(name, send) of every hot read."""
    bound = client_for(make_key(tenant=tenant, scopes=["configs:read", "flags:read", "registry:read"]))
    platform = client_for(make_key(tenant=None, scopes=["configs:read"]), HTTP_X_TENANT_ID=tenant.slug)
    config = "/api/v1/config/db.url?environment=production&service_name=svc"
    etag = bound.get(config)["ETag"]
    context = {"userId": "user-42", "properties": {"region": "eu"}}

    def ok(response):
        assert response.status_code in (200, 304), response.content
        return response

    return [
        ("config read, tenant-bound key", lambda: ok(bound.get(config))),
        ("config read, platform key + X-Tenant-ID", lambda: ok(platform.get(config))),
        ("304 revalidation", lambda: ok(bound.get(config, HTTP_IF_NONE_MATCH=etag))),
        ("service bundle", lambda: ok(bound.get("/api/v1/config/service/svc?environment=production"))),
        ("flag evaluate", lambda: ok(bound.post("/api/v1/feature-flags/evaluate", {
            "flag_name": "checkout", "environment": "production", "user_id": "user-42"}, format="json"))),
        ("evaluate-all", lambda: ok(bound.post("/api/v1/feature-flags/evaluate-all", {
            "environment": "production", "context": context}, format="json"))),
        ("OFREP bulk", lambda: ok(bound.post("/ofrep/v1/evaluate/flags", {"context": {"targetingKey": "user-42"}},
                                             format="json", HTTP_X_ENVIRONMENT="production"))),
        ("discovery", lambda: ok(bound.get("/api/v1/registry/svc"))),
    ]


def _warm(send) -> None:
    for _ in range(3):
        send()
    deadline = time.monotonic() + 10
    while not invalidation.connected() and time.monotonic() < deadline:  # values are kept once it listens
        time.sleep(0.02)
    for _ in range(3):
        send()


def test_hot_reads__cached__no_database_query_and_no_redis_command(fleet, tenant, make_key, client_for, monkeypatch):
    trips = RoundTrips(monkeypatch)
    found = {}

    for name, send in _requests(tenant, make_key, client_for):
        _warm(send)
        queries, commands = trips.count(send)
        found[name] = (len(queries), len(commands))

    assert found == {name: (0, 0) for name in found}, found


def test_round_trips__counter_sees_them__an_uncached_read_is_counted(fleet, tenant, make_key, client_for, monkeypatch):
    """The counter itself: a read whose caches are emptied makes queries and Redis commands."""
    from django.core.cache import cache

    from core.cache import clear_all

    trips = RoundTrips(monkeypatch)
    bound = client_for(make_key(tenant=tenant, scopes=["configs:read"]))

    def cold_read():
        cache.clear()
        clear_all()
        assert bound.get("/api/v1/config/db.url").status_code == 200

    queries, commands = trips.count(cold_read, times=1)

    assert queries and commands
