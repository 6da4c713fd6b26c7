"""Gunicorn settings for the hub: ``gunicorn -c config_hub/gunicorn.conf.py config_hub.asgi:application``.

Uvicorn workers (config_hub/asgi.py), one per CPU (``GUNICORN_WORKERS``): each
worker's event loop holds its change-stream listeners and long-poll waits as
coroutines, and every other route runs on its pool of ``GUNICORN_THREADS`` (16)
threads, as gthread workers ran it. One worker per CPU because a worker's Python
runs one thread at a time: more processes than cores only queue for them (on 2
cores, 5 workers × 16 threads gave every route's p99 at concurrency 16 about half
again as high as 2 × 16, at the same throughput).

What was measured (docs/performance.md, "Server settings"; ``BENCH_SERVER=uvicorn|gthread|sync
BENCH_WORKERS=n BENCH_THREADS=n make bench``): the uvicorn worker serves the
synchronous API as fast as gthread and is the only one that also serves the
change stream; sync workers hold a process per request. With these settings
every hot route's p99 at concurrency 16 is under 25 ms on a 2-vCPU machine (7-19
ms), once two things were fixed: the garbage collector's full collections
(``post_worker_init`` below, core/collector.py) and the WSGI bridge's round trips
through the event loop (config_hub.asgi.ThreadedWSGI). Re-measure on the
production host with ``bench/run`` before changing them.
"""
import multiprocessing
import os
import resource

bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count()))
worker_class = "uvicorn_worker.UvicornWorker"
# Uvicorn would otherwise take the client address from X-Forwarded-For sent via
# 127.0.0.1; the hub decides that itself (TRUSTED_PROXY_COUNT, core/api/throttling.py).
forwarded_allow_ips = ""
threads = int(os.environ.get("GUNICORN_THREADS", "16"))
# Long polls last up to EVENTS_MAX_WAIT (60 s): the timeout must exceed it.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "90"))
graceful_timeout = 30
keepalive = 5
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "warning")




def _raise_open_files() -> None:
    """Every stream listener is an open socket, and a worker holds up to
    EVENTS_STREAM_MAX_PER_PROCESS (10,000) of them: the soft limit on open files is
    raised to the hard one (process managers often start processes at 1,024; the
    workers inherit the master's). docs/operations.md says how to raise the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1_048_576
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


_raise_open_files()


def on_starting(server):  # noqa: ARG001
    # Prometheus multi-process mode: every worker writes its figures here.
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            os.remove(os.path.join(path, name))


def child_exit(server, worker):  # noqa: ARG001
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):  # noqa: ARG001
    """The garbage collector tuned for the tail, once the worker has loaded the hub
    (core/collector.py): start-up's objects frozen, a larger first generation, and
    long-lived objects frozen every GC_FREEZE_INTERVAL s, with one full collection
    every GC_FULL_INTERVAL s. Without it a full collection paused each worker for
    70-95 ms about once a second under load (300+ ms with 10,000 listeners): that
    pause was every route's p99."""
    from core import collector

    collector.tune(
        thresholds=os.environ.get("GC_THRESHOLD", "7000,10,100"),
        freeze_every=float(os.environ.get("GC_FREEZE_INTERVAL", "10")),
        full_every=float(os.environ.get("GC_FULL_INTERVAL", "3600")),
        log_pauses_ms=float(os.environ.get("GC_LOG_PAUSES_MS", "0")),
    )
