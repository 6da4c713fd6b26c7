"""Gunicorn settings for the hub: ``gunicorn -c config_hub/gunicorn.conf.py config_hub.asgi:application``.

Uvicorn workers (config_hub/asgi.py): the change stream's listeners are coroutines;
every other route runs on a pool of ``GUNICORN_THREADS`` threads per process, as
gthread workers ran it: each process serves ``GUNICORN_THREADS`` requests at once.
The hot paths are short and mostly wait on Redis, so threads keep a process
busy without the memory of more processes; and the long-poll watch
(``/api/v1/events/?wait=``) holds one thread per waiting caller, not a whole
process. At most EVENTS_WAIT_MAX_PER_PROCESS (default half of these threads)
are held by long polls, so ordinary reads always find a thread.

Why these settings and not gthread or sync workers (docs/performance.md, "Server
settings"): measured side by side at concurrency 16 (``BENCH_SERVER=uvicorn|gthread|sync
BENCH_WORKERS=n BENCH_THREADS=n make bench``), the uvicorn worker serves the
synchronous API as fast as gthread and is the only one that also serves the
change stream's listeners as coroutines; sync workers hold a process per request
(and per long poll). No setting met the p99 target (< 25 ms) on the 2-vCPU
machine of those measurements, the bare view's own p99 included: its tail was the
machine's (the load generator, PostgreSQL, Redis and other jobs on the same two
cores), not the server's settings. Re-measure on the production host with
``bench/run`` before changing them.
"""
import multiprocessing
import os
import resource

bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
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
