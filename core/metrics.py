"""The hub's Prometheus counters and histograms: every app records into these; the
project serves them at /metrics (``config_hub.metrics.render``).

Counters and histograms live in this process; under gunicorn with several
workers set PROMETHEUS_MULTIPROC_DIR (an empty directory shared by the workers)
and /metrics aggregates every worker's figures.
"""
from __future__ import annotations

from prometheus_client import Counter, Histogram

CONFIG_FETCH_SECONDS = Histogram(
    "confighub_config_fetch_seconds",
    "Time to answer a config read (single value, tenant read or service bundle)",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
CONFIG_CACHE = Counter("confighub_config_cache_total", "Resolved config lookups by cache outcome", ["outcome"])
FLAG_EVALUATIONS = Counter("confighub_flag_evaluations_total", "Feature flag evaluations")
WEBHOOK_DELIVERIES = Counter("confighub_webhook_deliveries_total", "Webhook delivery attempts by outcome", ["outcome"])
REGISTRY_HEARTBEATS = Counter("confighub_registry_heartbeats_total", "Registry heartbeats received")
