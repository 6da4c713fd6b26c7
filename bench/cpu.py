"""Server CPU time per request: the figure the performance targets use (issue 16).

    .venv/bin/python bench/cpu.py            # seeds, starts one worker, prints the CPU table
    (``make bench`` runs it before the throughput table; bench/run.py calls :func:`cpu_table`.)

Requests per second on a shared 2-core machine swing by x2 within a minute; the
CPU time the server spends on a request does not (much). So: gunicorn with ONE
worker process of the Procfile's web server (uvicorn worker, the WSGI app on its
thread pool), its CPU time (user + system of every thread: the scheduler's ``/proc/<pid>/task/*/schedstat``)
read before and after a fixed number of requests of one route (200), sent by a
client in this process over a few keep-alive connections. Each route alternates
with the bare view, round after round (21 rounds). A route's figure is the lower
quartile of its rounds, and its ratio is the bare view's lower quartile over the
route's: on a shared VM, other work only ever ADDS to a slice's CPU time (time
stolen by the hypervisor is counted as the guest task's, caches are thrashed),
so the low rounds are the ones noise moved least; the median of the rounds'
ratios is kept beside it in the JSON. The load generator's own CPU is not
counted: it is another process.

The throttle counts as in production (``API_THROTTLE_RATE`` high enough that the
bench is never refused: the counting is what costs).
"""
from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (bench/run.py: the same environment, seed and routes)

REQUESTS = int(os.environ.get("BENCH_CPU_REQUESTS", "200"))  # per route and round
ROUNDS = int(os.environ.get("BENCH_CPU_ROUNDS", "21"))
CONNECTIONS = int(os.environ.get("BENCH_CPU_CONNECTIONS", "4"))
_TICK = os.sysconf("SC_CLK_TCK")

# route -> minimum ratio of the bare view's CPU per request to the route's (issue 16)
TARGETS = {
    "config read, tenant-bound key": 0.85, "config read, platform key + X-Tenant-ID": 0.8, "304 revalidation": 0.95,
    "service bundle (50 keys)": 0.6, "flag evaluate": 0.8, "evaluate-all (100 flags)": 0.5,
    "OFREP bulk (100 flags)": 0.5, "heartbeat": 0.7, "discovery": 0.8,
}


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of every thread of ``pid``: the sum of the threads'
    ``/proc/<pid>/task/<tid>/schedstat`` (the scheduler's own count, in ns), else
    ``/proc/<pid>/stat`` fields 14 and 15 (in clock ticks: 10 ms, sampled, so a
    slice of 1 s of CPU would be good to about 10 %). The worker's threads live as
    long as it does (the event loop, the WSGI thread pool, the background ones)."""
    try:
        total = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as handle:
                total += int(handle.read().split()[0])
        if total:
            return total / 1e9
    except (OSError, ValueError, IndexError):
        pass
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


class Driver:
    """Sends one route's request ``count`` times over ``connections`` keep-alive
    connections and checks every answer (2xx or 304)."""

    def __init__(self, base: str, connections: int):
        parts = urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        self.connections = connections
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        return conn

    def _send(self, method: str, path: str, headers: dict, body: bytes | None, count: int, errors: list) -> None:
        for _ in range(count):
            conn = self._conn()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                errors.append("connection")
                continue
            if response.status >= 400:
                errors.append(response.status)

    def drive(self, method: str, url: str, headers: dict, body: dict | None, count: int) -> list:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        raw = json.dumps(body).encode() if body is not None else None
        headers = dict(headers, **({"Content-Type": "application/json"} if body is not None else {}))
        errors: list = []
        share = [count // self.connections + (1 if i < count % self.connections else 0) for i in range(self.connections)]
        threads = [threading.Thread(target=self._run, args=(method, path, headers, raw, n, errors)) for n in share]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return errors

    def _run(self, *args) -> None:
        self._send(*args)
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()


def start_server(env: dict, work: Path, *, workers: int, threads: int, app: list[str] | None = None) -> tuple[subprocess.Popen, str]:
    port = bench.free_port()
    env = dict(env, GUNICORN_WORKERS=str(workers), GUNICORN_THREADS=str(threads), GUNICORN_BIND=f"127.0.0.1:{port}",
               PROMETHEUS_MULTIPROC_DIR=str(work / f"prom-{port}"))
    app = app or ["config_hub.asgi:application"]
    log = open(work / f"gunicorn-{port}.log", "w")  # noqa: SIM115 - open while the server runs
    server = subprocess.Popen([str(bench.REPO / ".venv" / "bin" / "gunicorn"), "-c", "config_hub/gunicorn.conf.py", *app],
                              env=env, cwd=bench.REPO, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(f"{base}/health", timeout=1)
            return server, base
        except OSError:
            if server.poll() is not None:
                raise SystemExit(f"gunicorn exited: see {log.name}") from None
            time.sleep(0.2)
    raise SystemExit("gunicorn did not answer /health")


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


def cpu_table(env: dict, seed: dict, work: Path, *, requests: int = REQUESTS, rounds: int = ROUNDS,
              log=print) -> list[dict]:
    """The CPU table: one row per route (the bare view first) with ms of server CPU
    per request (median of rounds) and the ratio to the bare view beside it."""
    server, base = start_server(env, work, workers=1, threads=int(os.environ.get("BENCH_CPU_THREADS", "8")))
    try:
        (worker,) = _wait_for_children(server.pid, 1)
        if "etag" not in seed:
            seed["etag"] = bench.fetch_etag(base, seed)
        all_routes = bench.selected_routes(seed, base)
        driver = Driver(base, CONNECTIONS)
        for name, method, url, headers, body in all_routes:  # warm every cache, check every answer
            errors = driver.drive(method, url, headers, body, 300)
            if errors:
                raise SystemExit(f"{name}: {len(errors)} failed requests, e.g. {errors[0]}")

        def cost(route) -> float:
            _name, method, url, headers, body = route
            before = process_cpu_seconds(worker)
            errors = driver.drive(method, url, headers, body, requests)
            spent = process_cpu_seconds(worker) - before
            if errors:
                raise SystemExit(f"{route[0]}: {len(errors)} failed requests, e.g. {errors[0]}")
            return spent / requests * 1000

        bare = all_routes[0]
        rows, bare_costs = [], []
        for route in all_routes[1:]:
            pairs = [(cost(bare), cost(route)) for _ in range(rounds)]
            bare_costs += [b for b, _ in pairs]
            q_bare, q_route = _low_quartile([b for b, _ in pairs]), _low_quartile([r for _, r in pairs])
            ratio = q_bare / q_route
            row = {"route": route[0], "cpu_ms": q_route, "bare_cpu_ms": q_bare, "ratio": round(ratio, 3),
                   "median_of_round_ratios": round(statistics.median(b / r for b, r in pairs), 3),
                   "rounds": [round(b / r, 3) for b, r in pairs], "target_ratio": TARGETS.get(route[0])}
            row["met"] = None if row["target_ratio"] is None else row["ratio"] >= row["target_ratio"]
            rows.append(row)
            log(f"  cpu {route[0]}: {row['cpu_ms']:.3f} ms/request, ratio {ratio:.2f} "
                f"(median of the rounds' ratios {row['median_of_round_ratios']:.2f})", flush=True)
        rows.insert(0, {"route": bare[0], "cpu_ms": _low_quartile(bare_costs), "bare_cpu_ms": None, "ratio": 1.0,
                        "rounds": [], "target_ratio": None, "met": None})
        return rows
    finally:
        stop_server(server)


def _low_quartile(values: list[float]) -> float:
    return statistics.quantiles(values, n=4)[0] if len(values) > 1 else values[0]


def _wait_for_children(pid: int, count: int) -> list[int]:
    for _ in range(100):
        found = children(pid)
        if len(found) >= count:
            return found[:count]
        time.sleep(0.1)
    raise SystemExit("the gunicorn worker did not start")


def print_cpu_table(rows: list[dict]) -> None:
    print(f"{'route':42} {'CPU ms/req':>10} {'bare beside':>11} {'ratio':>6} {'target':>7} {'met':>4}")
    for r in rows:
        target = f">={r['target_ratio']}" if r["target_ratio"] else "-"
        met = "-" if r["met"] is None else ("yes" if r["met"] else "NO")
        bare = f"{r['bare_cpu_ms']:.3f}" if r["bare_cpu_ms"] else ""
        print(f"{r['route']:42} {r['cpu_ms']:10.3f} {bare:>11} {r['ratio']:6.2f} {target:>7} {met:>4}")
    print(f"\nserver CPU (user + system, /proc/<pid>/task/*/schedstat) of one gunicorn worker per request; {REQUESTS} requests per "
          f"route and round over {CONNECTIONS} keep-alive connection(s), {ROUNDS} rounds alternating with the bare view; "
          "CPU ms = the lower quartile of the route's rounds; ratio = the bare view's lower quartile / the route's")


def main() -> int:
    env = bench.bench_env()
    work = Path(tempfile.mkdtemp(prefix="bench-cpu-"))
    seed = bench.prepare(env, work)
    rows = cpu_table(env, seed, work)
    print()
    print_cpu_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
