"""Every Prometheus metric bookloop exports, declared in one place against a registry passed in.

Units are seconds and bytes; counters end in `_total`. Labels are bounded: `reason` comes from a
fixed set of dead-letter codes, and no metric here is labelled by property.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class IngestMetrics:
    """Stream-side ingestion metrics of the landing worker."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self.consumed = Counter(
            "bookloop_events_consumed_total", "Outcome messages taken from Kafka", registry=registry)
        self.landed = Counter(
            "bookloop_events_landed_total", "Events written to durable parquet files", registry=registry)
        self.duplicates = Counter(
            "bookloop_duplicates_total",
            "Events dropped because their event_id already landed within the dedupe horizon "
            "(conflicts included)",
            registry=registry)
        self.redelivered = Counter(
            "bookloop_redelivered_total",
            "Kafka messages seen again after a restart or rebalance whose offset already landed",
            registry=registry)
        self.conflicts = Counter(
            "bookloop_conflicts_total",
            "Duplicates whose content differs from the first version (first write wins)",
            registry=registry)
        self.dead_lettered = Counter(
            "bookloop_dead_lettered_total", "Messages sent to the dead-letter topic",
            ["reason"], registry=registry)
        self.late = Counter(
            "bookloop_late_events_total",
            "Events that arrived after their window closed (they still land, in a new part file)",
            registry=registry)
        self.flush_seconds = Histogram(
            "bookloop_window_flush_duration_seconds", "Wall time of one flush (write, fsync, rename)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=registry)
        self.bytes_written = Counter(
            "bookloop_parquet_written_bytes_total", "Bytes of parquet files landed", registry=registry)
        self.files_written = Counter(
            "bookloop_parquet_files_written_total", "Parquet part files landed", registry=registry)
        self.flush_errors = Counter(
            "bookloop_flush_errors_total", "Flushes that failed (nothing committed; retried)",
            registry=registry)
        self.buffered = Gauge(
            "bookloop_buffered_events", "Events waiting in open windows", registry=registry)
        self.event_time_lag = Gauge(
            "bookloop_event_time_lag_seconds",
            "Wall clock minus the newest event time seen (large during a replay of history)",
            registry=registry)
