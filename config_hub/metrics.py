"""Prometheus metrics of the hub, served at /metrics.

Counters and histograms live in this process; under gunicorn with several
workers set PROMETHEUS_MULTIPROC_DIR (an empty directory shared by the workers)
and /metrics aggregates every worker's figures. Gauges that describe the
database (registry instances by status, webhook subscriptions) are read at
scrape time by a collector, so they are right whichever process is scraped.
"""
from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

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


class DatabaseCollector:
    """Figures read from the database at scrape time."""

    def collect(self):
        from django.apps import apps

        if apps.is_installed("registry"):
            try:
                from registry.selectors import instance_counts_by_status

                family = GaugeMetricFamily("confighub_registry_instances", "Registry instances by status", labels=["status"])
                for status, count in sorted(instance_counts_by_status().items()):
                    family.add_metric([status], count)
                yield family
            except Exception:  # noqa: BLE001 - a scrape must not fail because of one figure
                pass
        try:
            from events.selectors import webhook_subscription_counts

            family = GaugeMetricFamily("confighub_webhook_subscriptions", "Webhook subscriptions by state", labels=["state"])
            for state, count in sorted(webhook_subscription_counts().items()):
                family.add_metric([state], count)
            yield family
        except Exception:  # noqa: BLE001
            pass


def render() -> bytes:
    """The Prometheus text exposition of every metric of the hub."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY as registry  # noqa: N811
    out = generate_latest(registry)
    db_registry = CollectorRegistry()
    db_registry.register(DatabaseCollector())
    return out + generate_latest(db_registry)
