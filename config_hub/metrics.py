"""/metrics: the counters and histograms every app records (``core.metrics``) and
the gauges read across apps. Gauges that describe the
database (registry instances by status, webhook subscriptions) are read at
scrape time by a collector, so they are right whichever process is scraped.
"""
from __future__ import annotations

import os

from django.apps import apps
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

import core.metrics  # noqa: F401  (the counters and histograms, registered on import)
from events.selectors import webhook_subscription_counts
from registry.selectors import instance_counts_by_status


class DatabaseCollector:
    """Figures read from the database at scrape time."""

    def collect(self):
        if apps.is_installed("registry"):
            try:
                family = GaugeMetricFamily("confighub_registry_instances", "Registry instances by status", labels=["status"])
                for status, count in sorted(instance_counts_by_status().items()):
                    family.add_metric([status], count)
                yield family
            except Exception:  # noqa: BLE001 - a scrape must not fail because of one figure
                pass
        try:
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
