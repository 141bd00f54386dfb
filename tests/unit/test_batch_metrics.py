import pytest
from prometheus_client import CollectorRegistry

from monitoring.batch_metrics import RetrainMetrics
from schemas.errors import BookloopError

COUNTS = {"retrained": 1, "not_deployed": 1, "skipped": 0, "failed": 0}


def sample(registry, name, **labels):
    return registry.get_sample_value(name, labels or None)


def test_run_and_model_metrics():
    registry = CollectorRegistry()
    metrics = RetrainMetrics(registry)
    metrics.record_model("city", "conversion", True, {"auc": 0.88, "logloss": 0.4})
    metrics.record_model("city", "adr", False, {"rmse": 24.5, "mae": 15.0})
    metrics.record_run(COUNTS, 12.5, 1_700_000_000.0)
    assert sample(registry, "bookloop_retrain_model_auc", property_id="city", model_type="conversion") == 0.88
    assert sample(registry, "bookloop_retrain_model_rmse", property_id="city", model_type="adr") == 24.5
    assert sample(registry, "bookloop_retrain_model_deployed", property_id="city", model_type="adr") == 0
    assert sample(registry, "bookloop_retrain_models", status="not_deployed") == 1
    assert sample(registry, "bookloop_retrain_duration_seconds") == 12.5
    assert sample(registry, "bookloop_retrain_last_success_timestamp_seconds") == 1_700_000_000.0


def test_a_failed_run_does_not_claim_success():
    registry = CollectorRegistry()
    RetrainMetrics(registry).record_run({**COUNTS, "failed": 1}, 3.0, 1_700_000_000.0)
    assert sample(registry, "bookloop_retrain_last_success_timestamp_seconds") is None
    assert sample(registry, "bookloop_retrain_last_run_timestamp_seconds") == 1_700_000_000.0


def test_push_failure_says_where_it_pushed():
    with pytest.raises(BookloopError, match="could not push retrain metrics to the Pushgateway at 127.0.0.1:9"):
        RetrainMetrics().push("127.0.0.1:9", timeout=2)
