"""monitoring/: metric names pass `promtool check metrics`; prometheus.yml and the alert rules pass
promtool (including the rules' unit tests); the Grafana dashboard only queries exported metrics."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitoring.batch_metrics import RetrainMetrics
from monitoring.metrics import DriftMetrics, IngestMetrics

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
GRAFANA = MONITORING / "grafana"
METRIC = re.compile(r"\bbookloop_[a-z0-9_]+")


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    if shutil.which("promtool") is None:
        pytest.fail("promtool not found: run `make system-deps` (installs Debian's prometheus package)")
    return subprocess.run(["promtool", *args], input=stdin, capture_output=True, text=True, timeout=60)


def worker_registry() -> CollectorRegistry:
    """Every worker metric with one sample per label set shape."""
    registry = CollectorRegistry()
    ingest, drift = IngestMetrics(registry), DriftMetrics(registry)
    ingest.dead_lettered.labels("bad_marker").inc()
    ingest.flush_seconds.observe(0.1)
    for gauge in (drift.ks_statistic, drift.ks_p_value, drift.psi, drift.feature_drifted):
        gauge.labels("city", "quoted_price").set(0.5)
    drift.samples.labels("city", "quoted_price", "current").set(100)
    for gauge in (drift.share_drifted, drift.evaluated, drift.retrain_recommended, drift.last_evaluation,
                  drift.current_window_end):
        gauge.labels("city").set(1)
    for gauge in (drift.window_events, drift.missing_ratio):
        gauge.labels("city", "current").set(1)
    drift.evaluation_seconds.observe(0.01)
    return registry


def exported_names(registry: CollectorRegistry) -> set[str]:
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    return {family.name + suffix for family in registry.collect() for suffix in suffixes[family.type]}


def retrain_names() -> set[str]:
    metrics = RetrainMetrics()
    metrics.record_model("city", "conversion", True, {"auc": 0.9, "rmse": 1.0})
    metrics.record_run({"failed": 0}, 1.0, 1.0)
    return exported_names(metrics.registry)


def test_worker_metrics_pass_promtool_check_metrics():
    result = promtool("check", "metrics", stdin=generate_latest(worker_registry()).decode())
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_prometheus_config_and_alert_rules_are_valid():
    result = promtool("check", "config", str(MONITORING / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_alert_rules_unit_tests_pass():
    result = promtool("test", "rules", str(MONITORING / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_only_use_exported_metrics():
    used = set(METRIC.findall((MONITORING / "alerts.yml").read_text()))
    assert used - exported_names(worker_registry()) - retrain_names() == set()


def dashboard() -> dict:
    return json.loads((GRAFANA / "dashboards" / "bookloop-drift.json").read_text())


def panel_exprs(panels: list[dict]) -> list[str]:
    exprs = []
    for panel in panels:
        exprs += [target["expr"] for target in panel.get("targets", [])]
        exprs += panel_exprs(panel.get("panels", []))
    return exprs


def test_dashboard_queries_only_exported_metrics():
    board = dashboard()
    exprs = panel_exprs(board["panels"]) + [v["definition"] for v in board["templating"]["list"]]
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert len(exprs) >= 20 and used - exported_names(worker_registry()) == set()
    titles = {panel["title"] for panel in board["panels"]}
    assert {"PSI per feature", "KS p-value per feature", "Drifted features (heat-map)", "Share of features drifted",
            "Ingestion rate", "Dead letters by reason", "Event-time lag", "Landed rows"} <= titles


def test_grafana_provisioning_points_at_the_dashboard_and_datasource():
    datasource = (GRAFANA / "provisioning" / "datasources" / "bookloop.yml").read_text()
    uid = re.search(r"^\s+uid: (\S+)", datasource, flags=re.M).group(1)
    uids = {target["datasource"]["uid"] for panel in dashboard()["panels"] for target in panel.get("targets", [])}
    assert uids == {uid} and "type: prometheus" in datasource
    provider = (GRAFANA / "provisioning" / "dashboards" / "bookloop.yml").read_text()
    assert "type: file" in provider and re.search(r"^\s+path: /\S+", provider, flags=re.M)
    ids = [panel["id"] for panel in dashboard()["panels"]]
    assert len(ids) == len(set(ids))
