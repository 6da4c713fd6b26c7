"""Per-request CPU cost of every benchmarked route, in-process: where the time goes.

    .venv/bin/python bench/inprocess.py [N] [--cprofile ROUTE-SUBSTRING]

Seeds the same data set as bench/run (production settings, PostgreSQL, Redis),
then calls the WSGI application directly, one request at a time, N times per
route (default 2,000), alternating with the bare view in slices, and prints
microseconds per request (medians) and the ratio to the bare view beside it. No sockets, no load generator, no thread scheduling: the figure
is the hub's own cost, which bench/run's ratios are made of. With --cprofile,
the top functions of the named route are printed too.
"""
from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import statistics
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
    for _chunk in app(env, lambda s, h, exc_info=None: status.append(s)):
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
    prepared = [(name, *environ_for(method, url, headers, body)) for name, method, url, headers, body in bench.routes(seed)]
    bare_environ, bare_raw = prepared[0][1], prepared[0][2]

    def cost(environ, raw, count) -> float:
        started = time.perf_counter()
        for _ in range(count):
            call(app, environ, raw)
        return (time.perf_counter() - started) / count * 1e6

    for name, environ, raw in prepared:
        for _ in range(50):  # warm every cache
            status = call(app, environ, raw)
        if not status.startswith(("200", "304")):
            raise SystemExit(f"{name}: {status}")
    # Each route alternates with the bare view in ROUNDS slices and the medians
    # are compared: the machine's speed drifts, a baseline taken once would not.
    rounds = 5
    for name, environ, raw in prepared[1:]:
        pairs = [(cost(bare_environ, bare_raw, max(1, n // rounds)), cost(environ, raw, max(1, n // rounds))) for _ in range(rounds)]
        rows.append((name, statistics.median(r for _, r in pairs), statistics.median(b for b, _ in pairs)))
        if target and any(t in name for t in target.split(",")):
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(n):
                call(app, environ, raw)
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(os.environ.get("PROFILE_SORT", "tottime")).print_stats(os.environ.get("PROFILE_FILTER", ""), 40)
            print(out.getvalue())
    def calls(environ, raw, count: int = 200) -> float:
        """Python function calls per request: a cost measure no machine noise moves."""
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(count):
            call(app, environ, raw)
        profiler.disable()
        return pstats.Stats(profiler).total_calls / count

    bare_calls = calls(bare_environ, bare_raw)
    print(f"\n{'route':34} {'us/request':>11} {'bare beside':>12} {'ratio':>6} {'calls/request':>14} {'calls ratio':>12}")
    print(f"{prepared[0][0]:34} {'':>11} {'':>12} {'':>6} {bare_calls:14.0f} {1:12.2f}")
    for (name, us, bare), (_n, environ, raw) in zip(rows, prepared[1:]):
        c = calls(environ, raw)
        print(f"{name:34} {us:11.0f} {bare:12.0f} {bare / us:6.2f} {c:14.0f} {bare_calls / c:12.2f}")
    print(f"\n{n} sequential requests per route in 5 slices alternating with the bare view, in-process (no sockets); "
          "medians; ratio = the bare view's cost beside it / the route's cost; calls = Python function calls per request "
          "(cProfile), which machine noise does not move")
    return 0


if __name__ == "__main__":
    sys.exit(main())
