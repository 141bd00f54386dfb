"""Metrics of a `bookloop retrain` run, pushed to a Prometheus Pushgateway.

A retrain ends before Prometheus could scrape it, so it pushes to the gateway under
job="bookloop_retrain". Every push is a POST: it replaces the metrics of the same names in that
group and leaves the others, so `bookloop_retrain_last_success_timestamp_seconds` (pushed only by
runs in which nothing failed) survives a failed run, and `time() - last_success` shows how long
retraining has been broken. Per-model metrics are labelled by property_id and model_type: at
most three series per hotel. The `bookloop-retrain` group of monitoring/alerts.yml alerts on these names.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway

from schemas.errors import BookloopError

JOB = "bookloop_retrain"
_MODEL_LABELS = ("property_id", "model_type")


class RetrainMetrics:
    """The run's metrics in their own registry (nothing else of the process gets pushed)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.duration = Gauge("bookloop_retrain_duration_seconds", "Wall time of the last retrain run",
                              registry=self.registry)
        self.last_run = Gauge("bookloop_retrain_last_run_timestamp_seconds",
                              "Unix time the last retrain run finished", registry=self.registry)
        self.models = Gauge("bookloop_retrain_models", "Models of the last run by status "
                            "(retrained, not_deployed, skipped, failed)", ["status"], registry=self.registry)
        self.auc = Gauge("bookloop_retrain_model_auc", "Validation AUC of the newly trained conversion model",
                         _MODEL_LABELS, registry=self.registry)
        self.rmse = Gauge("bookloop_retrain_model_rmse", "Validation RMSE of the newly trained adr/revpar model",
                          _MODEL_LABELS, registry=self.registry)
        self.deployed = Gauge("bookloop_retrain_model_deployed",
                              "1 when the newly trained model was deployed, 0 when the live one was kept",
                              _MODEL_LABELS, registry=self.registry)

    def record_model(self, property_id: str, model_type: str, deployed: bool, metrics: dict[str, float]) -> None:
        """A model this run trained (skipped and failed ones have no metrics)."""
        labels = (property_id, model_type)
        self.deployed.labels(*labels).set(1 if deployed else 0)
        if "auc" in metrics:
            self.auc.labels(*labels).set(metrics["auc"])
        if "rmse" in metrics:
            self.rmse.labels(*labels).set(metrics["rmse"])

    def record_run(self, counts: dict[str, int], seconds: float, finished_at: float) -> None:
        for status, count in counts.items():
            self.models.labels(status).set(count)
        self.duration.set(seconds)
        self.last_run.set(finished_at)
        if counts.get("failed", 0) == 0:
            Gauge("bookloop_retrain_last_success_timestamp_seconds",
                  "Unix time of the last retrain run in which nothing failed",
                  registry=self.registry).set(finished_at)

    def push(self, url: str, timeout: float = 10.0) -> None:
        try:
            pushadd_to_gateway(url, job=JOB, registry=self.registry, timeout=timeout)
        except OSError as exc:  # URLError and HTTPError are OSErrors
            raise BookloopError(f"could not push retrain metrics to the Pushgateway at {url}: {exc}; "
                                "check --pushgateway / BOOKLOOP_PUSHGATEWAY_URL") from exc
