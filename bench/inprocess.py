"""Per-request CPU cost of every benchmarked route, in-process: where the time goes.

    .venv/bin/python bench/inprocess.py [N] [--cprofile ROUTE-SUBSTRING]

Seeds the same data set as bench/run (production settings, PostgreSQL, Redis),
then calls the WSGI application directly, one request at a time, N times per
route (default 2,000), and prints microseconds per request and the ratio to
the bare view. No sockets, no load generator, no thread scheduling: the figure
is the hub's own cost, which bench/run's ratios are made of. With --cprofile,
the top functions of the named route are printed too.
"""
from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (bench/run.py: the same environment, seed and routes)


def environ_for(method: str, url: str, headers: dict[str, str], body: dict | None) -> tuple[dict, bytes]:
    parts = urlsplit(url)
    raw = json.dumps(body).encode() if body is not None else b""
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": parts.path, "QUERY_STRING": parts.query, "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1",
        "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True,
        "wsgi.run_once": False, "wsgi.version": (1, 0), "CONTENT_LENGTH": str(len(raw)),
    }
    if body is not None:
        environ["CONTENT_TYPE"] = "application/json"
    for k, v in headers.items():
        environ["HTTP_" + k.upper().replace("-", "_")] = v
    return environ, raw


def call(app, environ: dict, raw: bytes) -> str:
    status = []
    env = dict(environ, **{"wsgi.input": io.BytesIO(raw)})
    for chunk in app(env, lambda s, h, exc_info=None: status.append(s)):
        pass
    return status[0]


def main() -> int:
    args = sys.argv[1:]
    target = None
    if "--cprofile" in args:
        i = args.index("--cprofile")
        target = args[i + 1]
        del args[i:i + 2]
    n = int(args[0]) if args else 2000
    env = bench.bench_env()
    seed = bench.prepare(env, Path(tempfile.mkdtemp(prefix="profile-")))
    os.environ.update(env)
    sys.path.insert(0, str(bench.REPO))
    import django

    django.setup()
    from django.core.wsgi import get_wsgi_application

    app = get_wsgi_application()
    config_url = f"/api/v1/config/{seed['config_key']}?environment=production&service_name=svc-1"
    first = {}
    env0, raw0 = environ_for("GET", config_url, {"Authorization": f"ApiKey {seed['api_key']}"}, None)
    env0 = dict(env0, **{"wsgi.input": io.BytesIO(raw0)})
    response = app(env0, lambda s, h, exc_info=None: first.update(dict(h)))
    list(response)
    seed["etag"] = first["ETag"]
    rows = []
    for name, method, url, headers, body in bench.routes(seed):
        environ, raw = environ_for(method, url, headers, body)
        for _ in range(50):  # warm every cache
            status = call(app, environ, raw)
        if not status.startswith(("200", "304")):
            raise SystemExit(f"{name}: {status}")
        started = time.perf_counter()
        for _ in range(n):
            call(app, environ, raw)
        us = (time.perf_counter() - started) / n * 1e6
        rows.append((name, us))
        if target and any(t in name for t in target.split(",")):
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(n):
                call(app, environ, raw)
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(os.environ.get("PROFILE_SORT", "tottime")).print_stats(os.environ.get("PROFILE_FILTER", ""), 40)
            print(out.getvalue())
    bare = rows[0][1]
    print(f"\n{'route':34} {'us/request':>11} {'ratio':>6}")
    for name, us in rows:
        print(f"{name:34} {us:11.0f} {bare / us:6.2f}")
    print(f"\n{n} sequential requests per route, in-process (no sockets); ratio = bare view's cost / route's cost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
