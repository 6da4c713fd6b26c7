"""Faults on servers of the tests' own: a throwaway PostgreSQL cluster and Redis.

Every test in this package runs against a PostgreSQL cluster (``initdb`` into a
temporary directory) and a ``redis-server`` that this package starts on free
ports, and only those are stopped, killed and restarted. The machine's own
PostgreSQL and Redis (what the rest of the suite uses) are never touched: a
developer's local servers and another checkout's test run keep working.

While the package runs, the test process (its ORM, its cache, its Celery
publisher), the live server and any worker or beat it starts point at the
throwaway servers; everything is switched back afterwards.
"""
from __future__ import annotations

import copy
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import REPO, WorkerProcess


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} within {timeout}s")


def _pg_bindir() -> Path:
    """The newest PostgreSQL server binaries (Debian: /usr/lib/postgresql/<v>/bin), else PATH."""
    found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()]
    if found:
        return max(found, key=lambda p: int("".join(c for c in p.parent.name if c.isdigit()) or 0))
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("the fault tests need PostgreSQL's initdb and pg_ctl (Debian: postgresql)")
    return Path(initdb).parent


class ThrowawayPostgres:
    """A PostgreSQL cluster in a temporary directory, on a free port of 127.0.0.1, trust auth.

    ``initdb`` refuses to run as root: as root, the cluster belongs to the
    ``postgres`` OS user and every command runs as that user (``runuser``).
    """

    def __init__(self) -> None:
        self.bindir = _pg_bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="confighub-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.dir, user="postgres", group="postgres")

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def up(self) -> bool:
        ready = self.bindir / "pg_isready"
        return subprocess.run([str(ready), "-q", "-h", "127.0.0.1", "-p", str(self.port)], timeout=10).returncode == 0

    def init(self) -> ThrowawayPostgres:
        result = self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        if result.returncode:
            raise RuntimeError(f"initdb failed: {result.stdout}{result.stderr}")
        return self.start()

    def start(self) -> ThrowawayPostgres:
        options = (f"-p {self.port} -k {shlex.quote(str(self.dir))} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off -c synchronous_commit=off")
        result = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "postgres.log"), "-w", "-t", "60",
                           "-o", options, "start")
        if result.returncode:
            raise RuntimeError(f"pg_ctl start failed: {result.stdout}{result.stderr}{self.log()}")
        _wait(self.up, 30, "the throwaway PostgreSQL did not accept connections")
        return self

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        _wait(lambda: not self.up(), 30, "the throwaway PostgreSQL did not stop")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        path = self.dir / "postgres.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


class ThrowawayRedis:
    """A ``redis-server`` child process on a free port of 127.0.0.1, no persistence."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="confighub-redis-"))
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> ThrowawayRedis:
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir),
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", str(self.dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait(self.up, 15, "the throwaway Redis did not answer PING")
        return self

    def kill(self) -> None:
        """Gone at once, like a crash: no clean shutdown, every connection dropped."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=15)
        _wait(lambda: not self.up(), 10, "the throwaway Redis did not stop")

    def destroy(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=15)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="package")
def throwaway_postgres():
    server = ThrowawayPostgres()
    try:
        yield server.init()
    finally:
        server.destroy()


@pytest.fixture(scope="package")
def throwaway_redis():
    server = ThrowawayRedis()
    try:
        yield server.start()
    finally:
        server.destroy()


def _reset_celery_connections() -> None:
    from kombu import pools

    from config_hub.celery import app

    # app.pool comes from kombu's registry of pools per connection URL: closing one
    # and leaving it there hands the closed pool back when the URL is used again
    # ("Acquire on closed pool" in the tests after this package). Empty it.
    pools.reset()
    app._pool = None
    if "amqp" in app.__dict__:
        app.__dict__["amqp"]._producer_pool = None


@pytest.fixture(scope="package", autouse=True)
def _on_throwaway_servers(django_db_setup, django_db_blocker, throwaway_postgres, throwaway_redis):
    """Point the ORM, the cache and the Celery publisher at the throwaway servers for this package."""
    from django.conf import settings
    from django.db import connections
    from django.test.utils import override_settings

    from config_hub.celery import app

    conn = connections["default"]
    sd = conn.settings_dict
    saved = {k: sd.get(k) for k in ("HOST", "PORT", "NAME")}
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["LOCATION"] = throwaway_redis.url(0)
    redis_settings = override_settings(REDIS_URL=throwaway_redis.url(0), CELERY_BROKER_URL=throwaway_redis.url(1),
                                       CACHES=caches)
    broker_keys = ("broker_url", "broker_read_url", "broker_write_url")  # Celery derives the last two at start
    saved_broker = {k: app.conf[k] for k in broker_keys}
    with django_db_blocker.unblock():
        connections.close_all()
        sd.update(HOST="127.0.0.1", PORT=str(throwaway_postgres.port), NAME="postgres")
        conn.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    redis_settings.enable()
    app.conf.update({k: throwaway_redis.url(1) for k in broker_keys})
    _reset_celery_connections()
    try:
        yield
    finally:
        redis_settings.disable()
        app.conf.update(saved_broker)
        _reset_celery_connections()
        with django_db_blocker.unblock():
            connections.close_all()
        sd.update(saved)


@pytest.fixture
def redis_outage(throwaway_redis):
    """Kill the throwaway Redis for the body of ``with redis_outage():``; always restarted."""

    @contextmanager
    def outage():
        throwaway_redis.kill()
        try:
            yield
        finally:
            throwaway_redis.start()

    yield outage
    if not throwaway_redis.up():
        throwaway_redis.start()


@pytest.fixture
def postgres_outage(throwaway_postgres):
    """Stop the throwaway PostgreSQL for the body of ``with postgres_outage():``; always restarted."""

    @contextmanager
    def outage():
        throwaway_postgres.stop()
        try:
            yield
        finally:
            throwaway_postgres.start()

    yield outage
    if not throwaway_postgres.up():
        throwaway_postgres.start()


class BeatProcess:
    """A real ``celery beat`` subprocess with the environment of a :class:`WorkerProcess`."""

    def __init__(self, log_path: Path, env: dict[str, str], schedule_dir: Path):
        self.log_path = log_path
        self.env = env
        self.schedule = schedule_dir / "beat-schedule"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> BeatProcess:
        celery = str(Path(sys.executable).with_name("celery"))
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [celery, "-A", "config_hub", "beat", "--loglevel=INFO", "-s", str(self.schedule)],
            cwd=REPO, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        _wait(lambda: b"beat: Starting" in self.log_path.read_bytes() or self.proc.poll() is not None, timeout,
              "celery beat did not start")
        if self.proc.poll() is not None:
            raise RuntimeError(f"celery beat exited: {self.log_path.read_text()[-2000:]}")
        return self

    def stop(self) -> None:
        WorkerProcess.stop(self)  # type: ignore[arg-type]  # same terminate-then-kill
