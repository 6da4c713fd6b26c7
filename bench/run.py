"""Driver of bench/run: seed, start gunicorn, drive each route with wrk, print and save the table."""
from __future__ import annotations

import json
import os
import platform
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = str(REPO / ".venv" / "bin" / "python")
DB_NAME = os.environ.get("BENCH_DATABASE", "config_hub_bench")
SECONDS = int(os.environ.get("BENCH_SECONDS", "3"))  # per measurement
# Each route is measured ROUNDS times, alternating with the bare view, and the
# medians are compared: a shared machine's speed drifts during a run, and a
# baseline measured once at the start would tilt every later ratio.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
THREADS = int(os.environ.get("BENCH_THREADS", "16"))  # the recommended settings (config_hub/gunicorn.conf.py)
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "16"))
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")

P99_TARGET_MS = 25.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], env: dict, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=REPO, check=True, **kw)


def wrk_script(directory: Path, name: str, method: str, headers: dict[str, str], body: dict | None) -> Path:
    lines = [f'wrk.method = "{method}"']
    for k, v in headers.items():
        lines.append(f'wrk.headers["{k}"] = {json.dumps(v)}')
    if body is not None:
        lines.append('wrk.headers["Content-Type"] = "application/json"')
        lines.append(f"wrk.body = {json.dumps(json.dumps(body))}")
    path = directory / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def parse_wrk(text: str) -> dict:
    def ms(value: str) -> float:
        number = float(re.match(r"[\d.]+", value).group())
        return number / 1000 if value.endswith("us") else number * 1000 if value.endswith("s") and not value.endswith("ms") else number

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p50 = ms(re.search(r"\s50%\s+([\d.]+\w+)", text).group(1))
    p99 = ms(re.search(r"\s99%\s+([\d.]+\w+)", text).group(1))
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "non_2xx": int(errors.group(1)) if errors else 0}


def bench_env() -> dict[str, str]:
    """Production settings on PostgreSQL and Redis, as the benchmark's server runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "CELERY_"))}
    from cryptography.fernet import Fernet

    env.update({
        "DJANGO_SETTINGS_MODULE": "config_hub.settings.base", "DJANGO_DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50), "FERNET_KEYS": Fernet.generate_key().decode(),
        # Production refuses a missing or shared signing secret: one of each, distinct.
        "JWT_SIGNING_KEY": secrets.token_urlsafe(50), "SERVICE_JWT_SECRET": secrets.token_urlsafe(50),
        "SECURE_SSL_REDIRECT": "false", "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}", "REDIS_URL": REDIS_URL,
        "CELERY_BROKER_URL": REDIS_URL, "BENCH_ROUTES": "true",
        # The throttle counts every request as in production; the rate is high enough
        # that the benchmark's one key is never refused (its counting is the cost).
        "API_THROTTLE_RATE": "100000000/min", "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def prepare(env: dict[str, str], work: Path) -> dict:
    """A fresh database and Redis, migrated and seeded; the seed's handles (keys, tokens, names).
    BENCH_REUSE_SEED=1: the database seeded by the previous run, as it is (quicker profiling)."""
    kept = Path(tempfile.gettempdir()) / f"bench-seed-{DB_NAME}.json"
    keys = ("SECRET_KEY", "FERNET_KEYS", "JWT_SIGNING_KEY", "SERVICE_JWT_SECRET")
    if os.environ.get("BENCH_REUSE_SEED") and kept.exists():
        saved = json.loads(kept.read_text())
        env.update(saved["env"])  # the keys the seeded secrets and tokens were made with
        return saved["seed"]
    print(f"preparing database {DB_NAME} ...", flush=True)
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"DROP DATABASE IF EXISTS {DB_NAME}"], check=True)
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {DB_NAME}"], check=True)
    subprocess.run(["redis-cli", "-u", REDIS_URL, "flushdb"], check=True, stdout=subprocess.DEVNULL)
    run([PY, "manage.py", "migrate", "--noinput"], env, stdout=subprocess.DEVNULL)
    seed_file = work / "seed.json"
    run([PY, "manage.py", "bench_seed", str(seed_file)], env)
    seed = json.loads(seed_file.read_text())
    kept.write_text(json.dumps({"seed": seed, "env": {k: env[k] for k in keys}}))
    return seed


def routes(seed: dict, base: str = "") -> list[tuple[str, str, str, dict, dict | None]]:
    """(name, method, url, headers, body) of every measured route, the bare view first."""
    key = {"Authorization": f"ApiKey {seed['api_key']}"}
    config_url = f"{base}/api/v1/config/{seed['config_key']}?environment=production&service_name=svc-1"
    return [
        ("bare Django view (baseline)", "GET", f"{base}/bench/bare", {}, None),
        ("config read, tenant-bound key", "GET", config_url, key, None),
        ("config read, platform key + X-Tenant-ID", "GET", config_url,
         {"Authorization": f"ApiKey {seed['platform_key']}", "X-Tenant-ID": seed["tenant"]}, None),
        ("304 revalidation", "GET", config_url, {**key, "If-None-Match": seed["etag"]}, None),
        ("tenant read (seed 000)", "GET", f"{base}/config/tenants/{seed['tenant']}/configs/{seed['tenant_key']}",
         {"Authorization": f"Bearer {seed['api_key']}"}, None),
        ("service bundle (50 keys)", "GET", f"{base}/api/v1/config/service/{seed['bundle_service']}?environment=production", key, None),
        ("flag evaluate", "POST", f"{base}/api/v1/feature-flags/evaluate", key,
         {"flag_name": "flag1", "environment": "production", "user_id": "user-42"}),
        ("evaluate-all (100 flags)", "POST", f"{base}/api/v1/feature-flags/evaluate-all", key,
         {"environment": "production", "context": {"userId": "user-42", "properties": {"region": "eu"}}}),
        ("OFREP bulk (100 flags)", "POST", f"{base}/ofrep/v1/evaluate/flags", {**key, "X-Environment": "production"},
         {"context": {"targetingKey": "user-42", "region": "eu"}}),
        ("heartbeat", "POST", f"{base}/heartbeat", {"Authorization": f"Bearer {seed['service_token']}"},
         {"service_id": seed["instance_id"]}),
        ("discovery", "GET", f"{base}/api/v1/registry/{seed['bundle_service']}", key, None),
    ]


def selected_routes(seed: dict, base: str) -> list[tuple[str, str, str, dict, dict | None]]:
    """:func:`routes`, or with BENCH_ONLY (e.g. ``"304,bundle"``) the bare view and
    the routes whose names hold one of its parts."""
    all_routes = routes(seed, base)
    only = os.environ.get("BENCH_ONLY")
    if only:
        all_routes = all_routes[:1] + [r for r in all_routes[1:] if any(o in r[0] for o in only.split(","))]
    return all_routes


SERVERS = {  # BENCH_SERVER: the web server the throughput table drives (docs/performance.md compares them)
    "uvicorn": ["config_hub.asgi:application"],  # the Procfile's: uvicorn workers, the WSGI app on a thread pool
    "gthread": ["-k", "gthread", "config_hub.wsgi"],
    "sync": ["-k", "sync", "config_hub.wsgi"],
}
SERVER = os.environ.get("BENCH_SERVER") or ("gthread" if os.environ.get("BENCH_GTHREAD") else "uvicorn")
WORKERS = int(os.environ.get("BENCH_WORKERS", str(os.cpu_count() or 2)))


def fetch_etag(base: str, seed: dict) -> str:
    config_url = f"{base}/api/v1/config/{seed['config_key']}?environment=production&service_name=svc-1"
    request = urllib.request.Request(config_url, headers={"Authorization": f"ApiKey {seed['api_key']}"})
    return urllib.request.urlopen(request).headers["ETag"]


def throughput_table(env: dict, seed: dict, work: Path) -> list[dict]:
    """Requests/s, p50 and p99 of every route under wrk at CONCURRENCY, the server of
    BENCH_SERVER with WORKERS processes; each route alternating with the bare view."""
    import cpu

    server, base = cpu.start_server(env, work, workers=WORKERS, threads=THREADS, app=SERVERS[SERVER])
    try:
        wait_for_health(base)
        if "etag" not in seed:
            seed["etag"] = fetch_etag(base, seed)
        all_routes = selected_routes(seed, base)
        scripts = {name: wrk_script(work, re.sub(r"\W+", "_", name), method, headers, body)
                   for name, method, _url, headers, body in all_routes}
        urls = {name: url for name, _m, url, _h, _b in all_routes}
        bare_name = all_routes[0][0]

        def measure(name: str) -> dict:
            out = subprocess.run(["wrk", "-t2", f"-c{CONCURRENCY}", f"-d{SECONDS}s", "--latency", "-s", str(scripts[name]),
                                  urls[name]], capture_output=True, text=True, check=True).stdout
            return parse_wrk(out)

        def warm(name: str) -> None:  # fill caches and compile flag states in every worker
            subprocess.run(["wrk", "-t2", f"-c{CONCURRENCY}", "-d2s", "-s", str(scripts[name]), urls[name]],
                           capture_output=True, check=True)

        warm(bare_name)
        results, bare_runs = [], []
        for name, *_ in all_routes[1:]:
            warm(name)
            pairs = [(measure(bare_name), measure(name)) for _ in range(ROUNDS)]
            bare_runs += [b for b, _ in pairs]
            runs = [r for _, r in pairs]
            row = {"route": name, "rps": _median(r["rps"] for r in runs), "p50_ms": _median(r["p50_ms"] for r in runs),
                   "p99_ms": _median(r["p99_ms"] for r in runs), "non_2xx": sum(r["non_2xx"] for r in runs),
                   "bare_rps": _median(b["rps"] for b, _ in pairs)}
            results.append(row)
            print(f"  measured {name}: {row['rps']:.0f} req/s, p99 {row['p99_ms']:.1f} ms "
                  f"(bare view beside it: {row['bare_rps']:.0f})", flush=True)
        results.insert(0, {"route": bare_name, "rps": _median(b["rps"] for b in bare_runs),
                           "p50_ms": _median(b["p50_ms"] for b in bare_runs), "p99_ms": _median(b["p99_ms"] for b in bare_runs),
                           "non_2xx": sum(b["non_2xx"] for b in bare_runs), "bare_rps": None})
    finally:
        cpu.stop_server(server)
    for r in results:
        bare = r["bare_rps"] or r["rps"]
        r["rps_ratio"] = round(r["rps"] / bare, 3) if bare else None
        r["p99_met"] = r["p99_ms"] < P99_TARGET_MS
    return results


def print_throughput_table(results: list[dict]) -> None:
    print(f"{'route':42} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'req/s ratio':>11} {'p99 met':>8}")
    for r in results:
        extra = f"  ({r['non_2xx']} non-2xx)" if r["non_2xx"] else ""
        print(f"{r['route']:42} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['rps_ratio']:11.2f} "
              f"{'yes' if r['p99_met'] else 'NO':>8}{extra}")
    print(f"\nwrk at concurrency {CONCURRENCY}; each route {ROUNDS} x {SECONDS}s alternating with the bare view, medians; "
          f"gunicorn {WORKERS} x {SERVER} ({THREADS} threads); p99 target < {P99_TARGET_MS} ms")


def main() -> int:
    import cpu

    env = bench_env()
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    seed = prepare(env, work)
    cpu_rows = [] if os.environ.get("BENCH_SKIP_CPU") else cpu.cpu_table(env, seed, work)
    results = [] if os.environ.get("BENCH_SKIP_THROUGHPUT") else throughput_table(env, seed, work)
    machine = {"cpus": os.cpu_count(), "cpu": _cpu_model(), "python": platform.python_version(), "platform": platform.platform()}
    report = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine,
              "cpu": {"requests": cpu.REQUESTS, "rounds": cpu.ROUNDS, "connections": cpu.CONNECTIONS, "results": cpu_rows},
              "throughput": {"seconds": SECONDS, "concurrency": CONCURRENCY, "rounds": ROUNDS,
                             "gunicorn": {"workers": WORKERS, "server": SERVER, "threads": THREADS}, "results": results}}
    if cpu_rows:
        print("\nCPU per request (the figure the targets use)\n")
        cpu.print_cpu_table(cpu_rows)
    if results:
        print("\nThroughput and latency\n")
        print_throughput_table(results)
    print(f"\nmachine: {machine['cpus']} CPUs ({machine['cpu']}), Python {machine['python']}")
    results_dir = REPO / "bench" / "results"
    results_dir.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for path in (results_dir / f"{stamp}.json", results_dir / "latest.json"):
        path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: bench/results/{stamp}.json and bench/results/latest.json")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def wait_for_health(base: str, seconds: float = 30) -> None:
    """Until the server at ``base`` answers ``/health`` (or ``seconds`` passed)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/health", timeout=1)
            return
        except OSError:
            time.sleep(0.2)


def _median(values) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
