"""Stopping and restarting this machine's real PostgreSQL and Redis, always restored."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)


def redis_up() -> bool:
    return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "ping"], capture_output=True, timeout=5).stdout.strip() == b"PONG"


def stop_redis() -> None:
    _run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"])
    for _ in range(50):
        if not redis_up():
            return
        time.sleep(0.1)
    raise RuntimeError("redis did not stop")


def start_redis() -> None:
    if redis_up():
        return
    _run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379", "--save", "", "--appendonly", "no"])
    for _ in range(100):
        if redis_up():
            return
        time.sleep(0.1)
    raise RuntimeError("redis did not start")


def _pg_version() -> str:
    return sorted(p.name for p in Path("/etc/postgresql").iterdir())[0]


def postgres_up() -> bool:
    return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"], timeout=10).returncode == 0


def stop_postgres() -> None:
    _run(["pg_ctlcluster", "--skip-systemctl-redirect", _pg_version(), "main", "stop", "-m", "fast"])
    for _ in range(100):
        if not postgres_up():
            return
        time.sleep(0.1)
    raise RuntimeError("postgres did not stop")


def start_postgres() -> None:
    if postgres_up():
        return
    _run(["pg_ctlcluster", "--skip-systemctl-redirect", _pg_version(), "main", "start"])
    for _ in range(300):
        if postgres_up():
            return
        time.sleep(0.1)
    raise RuntimeError("postgres did not start")


@pytest.fixture
def redis_outage():
    """Stop Redis for the test's body (``with redis_outage():``); always restarted."""
    from contextlib import contextmanager

    @contextmanager
    def outage():
        stop_redis()
        try:
            yield
        finally:
            start_redis()

    yield outage
    start_redis()


@pytest.fixture
def postgres_outage():
    from contextlib import contextmanager

    @contextmanager
    def outage():
        stop_postgres()
        try:
            yield
        finally:
            start_postgres()

    yield outage
    start_postgres()
