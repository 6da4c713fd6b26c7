"""Driver of bench/listeners: many change-stream listeners on the Procfile's web process.

Starts the hub as production runs it (gunicorn, the Procfile's web line: uvicorn
workers, PostgreSQL in its own database, Redis in a private redis-server), then:

1. an ordinary config read (``GET /api/v1/config/{key}``, wrk at concurrency 16)
   with no listener: p50/p99;
2. LISTENERS stream listeners (``GET /api/v1/stream``) opened at RATE connects/s by
   CLIENTS load-generator processes (asyncio + uvloop, raw sockets): connect to
   first byte (the status line) and to the stream's first line, p50/p99;
3. the server's memory: RSS of the gunicorn master and workers before and with
   the listeners, per listener; each worker's share of the sockets;
4. the same config read with the listeners held: p50/p99, ratio to step 1;
5. CHANGES writes (``PUT /config/tenants/{t}/configs/bench.stream``), a few seconds
   apart: for each, the share of listeners that got the event within 1 s of the
   write being sent, and the delivery latency p50/p99/max;
6. the config read again while a change is written every 2 s.

Prints a table and writes ``bench/results/listeners-<stamp>.json``. Settings by
environment: BENCH_LISTENERS (10000), BENCH_RATE (1000), BENCH_CLIENTS (4),
BENCH_WORKERS (2), BENCH_THREADS (16, the Procfile's), BENCH_CHANGES (3),
BENCH_READ_SECONDS (10), BENCH_DATABASE (config_hub_bench_listeners),
BENCH_REDIS_URL (empty: a private redis-server on a free port).

``python bench/listeners.py --client ...`` is one load-generator process (internal).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = str(REPO / ".venv" / "bin" / "python")

EVENT = re.compile(rb"id: (\d+)\nevent: [^\n]+\n")


def _raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- one load-generator process ---------------------------------------------------------


class Listener(asyncio.Protocol):
    """One stream listener on a raw socket: the request, the status line, then the
    server-sent events' ids and arrival times (frames are found in the chunked body
    as they come; a yield of the hub is one chunk, so no frame spans a chunk head)."""

    def __init__(self, request: bytes, started: float):
        self.request = request
        self.started = started
        self.first_byte: float | None = None
        self.first_line: float | None = None
        self.status: int | None = None
        self.head = b""
        self.tail = b""
        self.events: list[tuple[int, float]] = []
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if self.first_byte is None:
            self.first_byte = now
        if self.status is None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            self.status = int(self.head[9:12])
            data, self.head = self.head[end + 4:], b""
            if self.status != 200:
                self.transport.close()
                return
        if self.first_line is None and b": connected" in data:
            self.first_line = now
        text = self.tail + data
        cut = text.rfind(b"\n\n")
        if cut < 0:
            self.tail = text[-4096:]
            return
        for match in EVENT.finditer(text, 0, cut + 2):
            self.events.append((int(match.group(1)), now))
        self.tail = text[cut + 2:]

    def connection_lost(self, exc):
        self.lost = True


async def client_main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    request = (f"GET /api/v1/stream HTTP/1.1\r\nHost: {args.host}:{args.port}\r\nAuthorization: ApiKey {args.key}\r\n"
               "Accept: text/event-stream\r\n\r\n").encode()
    listeners: list[Listener] = []
    failed: dict[str, int] = {}

    def say(message: dict) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    async def open_one(started: float) -> None:
        listener = Listener(request, started)
        try:
            await loop.create_connection(lambda: listener, args.host, args.port)
            listeners.append(listener)
        except OSError as exc:
            failed[exc.__class__.__name__] = failed.get(exc.__class__.__name__, 0) + 1

    say({"type": "ready"})
    line = await reader.readline()  # "go <wall clock start>"
    start_at = float(line.split()[1])
    await asyncio.sleep(max(0.0, start_at - time.time()))
    tasks = []
    for i in range(args.count):
        due = start_at + i / args.rate
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(open_one(time.time())))
    await asyncio.gather(*tasks)
    deadline = time.time() + 60
    while time.time() < deadline and any(x.status is None and not x.lost for x in listeners):
        await asyncio.sleep(0.1)
    say({"type": "ramp", "first_byte_ms": [(x.first_byte - x.started) * 1000 for x in listeners if x.first_byte],
         "first_line_ms": [(x.first_line - x.started) * 1000 for x in listeners if x.first_line],
         "ok": sum(1 for x in listeners if x.status == 200),
         "statuses": _count(str(x.status) for x in listeners if x.status not in (None, 200)),
         "no_answer": sum(1 for x in listeners if x.status is None), "connect_failed": failed})
    while True:
        line = (await reader.readline()).decode().split()
        if not line or line[0] == "quit":
            break
        if line[0] == "report":  # report <since>: per open listener, the first event after since
            since = float(line[1])
            got = [min((t for _i, t in x.events if t >= since), default=None) for x in listeners if x.status == 200]
            say({"type": "report", "latency_ms": [(t - since) * 1000 for t in got if t is not None],
                 "missing": sum(1 for t in got if t is None),
                 "open": sum(1 for x in listeners if x.status == 200 and not x.lost)})
    for listener in listeners:
        if listener.transport is not None:
            listener.transport.close()


def _count(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


# --- the coordinator ------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def proc_status(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/stat") as f:
        ticks = f.read().rsplit(")", 1)[1].split()
    fields = {"cpu_s": (int(ticks[11]) + int(ticks[12])) / os.sysconf("SC_CLK_TCK")}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "Threads"):
                fields[name] = int(value.split()[0])
    return fields


def sockets_of(pid: int) -> int:
    n = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                    n += 1
            except OSError:
                pass
    except OSError:
        pass
    return n


def server_figures(root: int) -> dict:
    pids = process_tree(root)
    per = {pid: proc_status(pid) for pid in pids}
    return {"rss_kib": sum(p["VmRSS"] for p in per.values()), "threads": sum(p["Threads"] for p in per.values()),
            "cpu_s": sum(p["cpu_s"] for p in per.values()),
            "processes": len(pids), "sockets_per_worker": [sockets_of(pid) for pid in pids if pid != root]}


class Clients:
    """CLIENTS load-generator processes holding LISTENERS streams between them."""

    def __init__(self, n: int, total: int, rate: float, host: str, port: int, key: str):
        self.procs = []
        for i in range(n):
            count = total // n + (1 if i < total % n else 0)
            self.procs.append(subprocess.Popen(
                [PY, __file__, "--client", "--host", host, "--port", str(port), "--key", key, "--count", str(count),
                 "--rate", str(rate / n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO))
        for proc in self.procs:
            assert json.loads(proc.stdout.readline())["type"] == "ready"

    def tell(self, line: str) -> None:
        for proc in self.procs:
            proc.stdin.write(line + "\n")
            proc.stdin.flush()

    def answers(self) -> list[dict]:
        return [json.loads(proc.stdout.readline()) for proc in self.procs]

    def close(self) -> None:
        for proc in self.procs:
            try:
                proc.stdin.write("quit\n")
                proc.stdin.close()
            except OSError:
                pass
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def private_redis(work: Path) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(work), "--maxclients", "10000"], stdout=subprocess.DEVNULL)
    for _ in range(50):
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    return proc, f"redis://127.0.0.1:{port}/0"


def main() -> int:
    total = int(os.environ.get("BENCH_LISTENERS", "10000"))
    rate = float(os.environ.get("BENCH_RATE", "1000"))
    n_clients = int(os.environ.get("BENCH_CLIENTS", "4"))
    workers = int(os.environ.get("BENCH_WORKERS", "2"))
    threads = int(os.environ.get("BENCH_THREADS", "16"))
    changes = int(os.environ.get("BENCH_CHANGES", "3"))
    read_seconds = int(os.environ.get("BENCH_READ_SECONDS", "10"))
    fd_limit = _raise_fd_limit()
    load_before = _loadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-listeners-"))
    redis_proc = None
    if not os.environ.get("BENCH_REDIS_URL"):
        redis_proc, os.environ["BENCH_REDIS_URL"] = private_redis(work)
    os.environ.setdefault("BENCH_DATABASE", "config_hub_bench_listeners")
    import run  # bench/run.py: the same production settings, database and seed

    env = run.bench_env()
    server = None
    clients = None
    report: dict = {}
    try:
        seed = run.prepare(env, work)
        port = run.free_port()
        base = f"http://127.0.0.1:{port}"
        env.update({"GUNICORN_WORKERS": str(workers), "GUNICORN_THREADS": str(threads),
                    "GUNICORN_BIND": f"127.0.0.1:{port}", "PROMETHEUS_MULTIPROC_DIR": str(work / "prom")})
        # The Procfile's web line as it is.
        procfile = (REPO / "Procfile").read_text()
        web = next(line.split(":", 1)[1].split() for line in procfile.splitlines() if line.startswith("web:"))
        server = subprocess.Popen([str(REPO / ".venv" / "bin" / web[0]), *web[1:]], env=env, cwd=REPO,
                                  stdout=open(work / "gunicorn.log", "w"), stderr=subprocess.STDOUT)
        run.wait_for_health(base)
        name, _m, read_url, read_headers, _b = run.routes({**seed, "etag": ""}, base)[1]
        script = run.wrk_script(work, "config_read", "GET", read_headers, None)
        tenant, stream_key = seed["tenant"], seed["stream_key"]
        counter = [0]

        def change() -> tuple[float, float]:
            counter[0] += 1
            request = urllib.request.Request(f"{base}/config/tenants/{tenant}/configs/bench.stream", method="PUT",
                                             data=json.dumps({"config_value": {"n": counter[0]}}).encode(),
                                             headers={"Authorization": f"Bearer {stream_key}",
                                                      "Content-Type": "application/json"})
            sent = time.time()
            with urllib.request.urlopen(request, timeout=30) as answer:
                assert answer.status in (200, 201), answer.status
            return sent, time.time()

        def read(seconds: int) -> dict:
            out = subprocess.run(["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "-s", str(script), read_url],
                                 capture_output=True, text=True, check=True).stdout
            return run.parse_wrk(out)

        change()  # the key exists; every worker has seen a write
        subprocess.run(["wrk", "-t2", "-c16", "-d3s", "-s", str(script), read_url], capture_output=True, check=True)
        print(f"config read without listeners ({read_seconds} s) ...", flush=True)
        read_before = read(read_seconds)
        before = server_figures(server.pid)

        print(f"opening {total} listeners at {rate:.0f}/s from {n_clients} processes ...", flush=True)
        clients = Clients(n_clients, total, rate, "127.0.0.1", port, stream_key)
        ramp_start = time.time() + 0.5
        clients.tell(f"go {ramp_start}")
        ramps = clients.answers()
        ramp_seconds = time.time() - ramp_start
        ramp_cpu = server_figures(server.pid)["cpu_s"] - before["cpu_s"]
        first_byte = [v for r in ramps for v in r["first_byte_ms"]]
        first_line = [v for r in ramps for v in r["first_line_ms"]]
        held = sum(r["ok"] for r in ramps)
        time.sleep(3)
        during = server_figures(server.pid)

        print(f"{held} listeners held; config read with them ({read_seconds} s) ...", flush=True)
        read_with = read(read_seconds)

        deliveries = []
        for i in range(changes):
            time.sleep(3)
            cpu_before = server_figures(server.pid)["cpu_s"]
            sent, done = change()
            time.sleep(4)
            fanout_cpu = server_figures(server.pid)["cpu_s"] - cpu_before
            for _ in range(20):  # until every listener has it (or 14 s more)
                clients.tell(f"report {sent}")
                got = clients.answers()
                latency = [v for r in got for v in r["latency_ms"]]
                if len(latency) >= held:
                    break
                time.sleep(0.7)
            deliveries.append({"write_ms": round((done - sent) * 1000, 1), "listeners": held,
                               "reached": len(latency), "within_1s": sum(1 for v in latency if v <= 1000),
                               "p50_ms": pct(latency, 50), "p99_ms": pct(latency, 99), "max_ms": max(latency, default=None),
                               "open": sum(r["open"] for r in got),
                               "server_cpu_us_per_listener": round(fanout_cpu * 1e6 / max(held, 1), 1)})
            d = deliveries[-1]
            print(f"  change {i + 1}: {d['within_1s']}/{held} within 1 s, p50 {_ms(d['p50_ms'])}, "
                  f"p99 {_ms(d['p99_ms'])}", flush=True)

        print(f"config read with listeners and a change every 2 s ({read_seconds} s) ...", flush=True)
        stop = threading.Event()

        def writer():
            while not stop.wait(2):
                change()

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        read_changing = read(read_seconds)
        stop.set()
        thread.join()
        after = server_figures(server.pid)

        listeners_rss = during["rss_kib"] - before["rss_kib"]
        report = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "settings": {"listeners": total, "rate_per_s": rate, "client_processes": n_clients, "gunicorn_workers": workers,
                         "threads": threads, "fd_limit": fd_limit, "procfile_web": " ".join(web)},
            "machine": {"cpus": os.cpu_count(), "cpu": run._cpu_model(), "python": platform.python_version(),
                        "platform": platform.platform(), "loadavg_before": load_before, "loadavg_after": _loadavg()},
            "connect": {"held": held, "ramp_seconds": round(ramp_seconds, 2),
                        "server_cpu_ms_per_connect": round(ramp_cpu * 1000 / max(held, 1), 2),
                        "first_byte_p50_ms": pct(first_byte, 50), "first_byte_p99_ms": pct(first_byte, 99),
                        "first_line_p50_ms": pct(first_line, 50), "first_line_p99_ms": pct(first_line, 99),
                        "refused": _merge(r["statuses"] for r in ramps), "no_answer": sum(r["no_answer"] for r in ramps),
                        "connect_failed": _merge(r["connect_failed"] for r in ramps)},
            "memory": {"rss_before_mib": round(before["rss_kib"] / 1024, 1), "rss_with_mib": round(during["rss_kib"] / 1024, 1),
                       "rss_after_changes_mib": round(after["rss_kib"] / 1024, 1),
                       "per_listener_kib": round(listeners_rss / max(held, 1), 1),
                       "total_per_listener_kib": round(during["rss_kib"] / max(held, 1), 1),
                       "threads_before": before["threads"], "threads_with": during["threads"],
                       "sockets_per_worker": during["sockets_per_worker"]},
            "read": {"route": name, "without": read_before, "with_listeners": read_with,
                     "with_listeners_and_changes": read_changing,
                     "p99_ratio": round(read_with["p99_ms"] / read_before["p99_ms"], 2),
                     "p99_ratio_changing": round(read_changing["p99_ms"] / read_before["p99_ms"], 2)},
            "deliveries": deliveries,
        }
    finally:
        if clients is not None:
            clients.close()
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=40)
            except subprocess.TimeoutExpired:
                server.kill()
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
    print_report(report)
    results_dir = REPO / "bench" / "results"
    results_dir.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (results_dir / f"listeners-{stamp}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: bench/results/listeners-{stamp}.json")
    if os.environ.get("BENCH_KEEP_WORK"):  # the server's log stays, e.g. with GC_LOG_PAUSES_MS
        print(f"kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _loadavg() -> str:
    """The 1/5/15-minute load averages: other work on the machine shows here."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def _merge(dicts) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def print_report(r: dict) -> None:
    c, m, rd = r["connect"], r["memory"], r["read"]
    s = r["settings"]
    print()
    print(f"{s['listeners']} listeners asked at {s['rate_per_s']:.0f} connects/s; held {c['held']} "
          f"(ramp {c['ramp_seconds']} s; refused {c['refused'] or 0}, no answer {c['no_answer']}, "
          f"connect failed {c['connect_failed'] or 0}); server CPU {c['server_cpu_ms_per_connect']} ms per connect")
    print(f"  connect to first byte   p50 {c['first_byte_p50_ms']:.1f} ms  p99 {c['first_byte_p99_ms']:.1f} ms  "
          f"(target p99 < 50 ms: {'met' if c['first_byte_p99_ms'] < 50 else 'NOT met'})")
    print(f"  connect to ': connected' p50 {c['first_line_p50_ms']:.1f} ms  p99 {c['first_line_p99_ms']:.1f} ms")
    for i, d in enumerate(r["deliveries"], 1):
        share = d["within_1s"] / max(d["listeners"], 1) * 100
        print(f"  change {i}: {share:.2f} % within 1 s ({d['within_1s']}/{d['listeners']}, reached {d['reached']}); "
              f"latency p50 {_ms(d['p50_ms'])} p99 {_ms(d['p99_ms'])} max {_ms(d['max_ms'])}; write {d['write_ms']} ms; "
              f"server CPU {d['server_cpu_us_per_listener']} us per listener "
              f"(target 99 %: {'met' if share >= 99 else 'NOT met'})")
    print(f"  server RSS {m['rss_before_mib']} MiB -> {m['rss_with_mib']} MiB with the listeners: "
          f"{m['per_listener_kib']} KiB per listener ({m['total_per_listener_kib']} KiB with the base); "
          f"threads {m['threads_before']} -> {m['threads_with']}; sockets per worker {m['sockets_per_worker']}")
    for label, figures in (("without listeners", rd["without"]), ("with listeners", rd["with_listeners"]),
                           ("with listeners, a change every 2 s", rd["with_listeners_and_changes"])):
        print(f"  config read {label:36} {figures['rps']:7.0f} req/s  p50 {figures['p50_ms']:6.1f} ms  "
              f"p99 {figures['p99_ms']:6.1f} ms")
    print(f"  read p99 ratio with / without: {rd['p99_ratio']} (with changes {rd['p99_ratio_changing']}; target < 2: "
          f"{'met' if rd['p99_ratio'] < 2 else 'NOT met'})")
    print(f"  machine: {r['machine']['cpus']} CPUs ({r['machine']['cpu']}), Python {r['machine']['python']}; "
          f"gunicorn {s['gunicorn_workers']} workers x {s['threads']} threads; load average before "
          f"{r['machine']['loadavg_before']}, after {r['machine']['loadavg_after']}")


if __name__ == "__main__":
    if "--client" in sys.argv:
        parser = argparse.ArgumentParser()
        for name in ("--host", "--key"):
            parser.add_argument(name, required=True)
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--count", type=int, required=True)
        parser.add_argument("--rate", type=float, required=True)
        parser.add_argument("--client", action="store_true")
        _raise_fd_limit()
        import uvloop

        uvloop.run(client_main(parser.parse_args()))
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        sys.exit(main())
