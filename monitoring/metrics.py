"""Every Prometheus metric bookloop exports, declared in one place against a registry passed in.

Units are seconds and bytes; counters end in `_total`. Labels are bounded: `reason` comes from a
fixed set of dead-letter codes; drift metrics are labelled by property and feature, both capped
(see DriftMetrics).
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
        self.decode_helpers_lost = Counter(
            "bookloop_decode_helpers_lost_total",
            "Decode helpers that died or stopped answering (the worker read their batches itself)",
            registry=registry)
        self.event_time_lag = Gauge(
            "bookloop_event_time_lag_seconds",
            "Wall clock minus the newest event time seen (large during a replay of history)",
            registry=registry)


class DriftMetrics:
    """Drift gauges of the worker, per property (at most BOOKLOOP_METRICS_MAX_PROPERTIES) and
    feature (the 11 fixed ones plus at most 32 numeric `features` keys): see monitoring/drift.py."""

    def __init__(self, registry: CollectorRegistry):
        pf, p = ["property_id", "feature"], ["property_id"]
        self.ks_statistic = Gauge(
            "bookloop_drift_ks_statistic", "Two-sample KS statistic, reference vs current window",
            pf, registry=registry)
        self.ks_p_value = Gauge(
            "bookloop_drift_ks_p_value", "Two-sample KS p-value, reference vs current window", pf,
            registry=registry)
        self.psi = Gauge(
            "bookloop_drift_psi", "Population stability index of the current vs the reference window",
            pf, registry=registry)
        self.feature_drifted = Gauge(
            "bookloop_drift_feature_drifted", "1 when the feature drifted (KS p or PSI past its threshold)",
            pf, registry=registry)
        self.samples = Gauge(
            "bookloop_drift_samples", "Non-missing values of the feature in the window (reference|current)",
            pf + ["window"], registry=registry)
        self.share_drifted = Gauge(
            "bookloop_drift_features_drifted_ratio", "Drifted features / evaluated features", p,
            registry=registry)
        self.evaluated = Gauge(
            "bookloop_drift_features_evaluated", "Features with enough samples in both windows", p,
            registry=registry)
        self.retrain_recommended = Gauge(
            "bookloop_drift_retrain_recommended", "1 when the share of drifted features is past its threshold",
            p, registry=registry)
        self.last_evaluation = Gauge(
            "bookloop_drift_last_evaluation_timestamp_seconds", "Wall-clock time of the last evaluation", p,
            registry=registry)
        self.current_window_end = Gauge(
            "bookloop_drift_current_window_end_timestamp_seconds",
            "Event-time end of the current window of the last evaluation", p, registry=registry)
        self.window_events = Gauge(
            "bookloop_drift_window_events", "Landed events of the property in the window (reference|current)",
            p + ["window"], registry=registry)
        self.missing_ratio = Gauge(
            "bookloop_drift_missing_values_ratio",
            "Missing values / (rows x features present in either window), per window", p + ["window"],
            registry=registry)
        self.evaluation_seconds = Histogram(
            "bookloop_drift_evaluation_duration_seconds", "Wall time of one property's drift evaluation",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=registry)
        self.events_published = Counter(
            "bookloop_drift_events_published_total", "DriftDetected events handed to the producer",
            registry=registry)
        self.tracked_properties = Gauge(
            "bookloop_drift_tracked_properties", "Properties whose drift the worker tracks", registry=registry)
        self.untracked_windows = Counter(
            "bookloop_drift_untracked_windows_total",
            "Landed windows of properties beyond BOOKLOOP_METRICS_MAX_PROPERTIES (no drift tracked)",
            registry=registry)
