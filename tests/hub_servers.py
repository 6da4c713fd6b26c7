"""Real hub server processes of this checkout for tests: ``uvicorn config_hub.asgi:application``
(the Procfile's application) on the test database and Redis, on a free port."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import process_settings
from tests.faults.conftest import free_port
from tests.waiting import serving

REPO = Path(__file__).resolve().parents[1]
MAX_LISTENERS = 3
KEEPALIVE = 1.0


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PROMETHEUS_"))}
    env.update(process_settings())
    env.update({
        "EVENTS_STREAM_MAX_PER_PROCESS": str(MAX_LISTENERS),
        "EVENTS_STREAM_KEEPALIVE": str(KEEPALIVE),
        "GUNICORN_THREADS": "4",
        # One reading thread: a thread more after a connect would be a listener's.
        "EVENTS_STREAM_DB_THREADS": "1",
        # Tests flush the database between them: no per-process cache may outlive a test.
        "LOCAL_INVALIDATION": "false",
    })
    env.update(extra)
    return env


PIDS: dict[str, int] = {}


def thread_count(base: str) -> int:
    """The server's threads, without uvloop's fixed pool (``libuv-worker``: 4 threads
    for name lookups, started at the first one)."""
    names = [(task / "comm").read_text().strip() for task in Path(f"/proc/{PIDS[base]}/task").iterdir()]
    return sum(name != "libuv-worker" for name in names)


@contextmanager
def uvicorn_hub(log_path: Path, env: dict[str, str]):
    """``uvicorn config_hub.asgi:application`` of this checkout on a free port; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serving([sys.executable, "-m", "uvicorn", "config_hub.asgi:application", "--host", "127.0.0.1",
                  "--port", str(port)], base=base, cwd=REPO, env=env, log_path=log_path) as proc:
        PIDS[base] = proc.pid
        yield base
