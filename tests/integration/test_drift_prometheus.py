"""Drift through Debian's real Prometheus: a worker lands two months of the real dataset with
quoted_price x 1.3 for one hotel's last 14 days; Prometheus scrapes the worker, and its HTTP API
shows drift for that hotel's price and none for the other's. The worker's numbers equal the batch
CLI's, which equal scipy's on the landed rows read back with DuckDB."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from scipy.stats import ks_2samp

from batch.drift import drift_for_property
from consumers.process import WorkerProcess
from producers.embedded_broker import free_port
from producers.publisher import OutcomePublisher
from producers.replay_mapping import load_bookings, outcomes_from_bookings
from producers.topics import ensure_topics
from schemas.codec import default_codec

pytestmark = pytest.mark.integration

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
AS_OF = date(2016, 8, 8)  # on this day resort's own prices are stable (KS p ~ 0.5, PSI ~ 0.05)
FIRST_DAY = AS_OF - timedelta(days=59)
SHIFTED, UNTOUCHED = "city", "resort"


def shifted_outcomes() -> list[dict]:
    """The bookings made FIRST_DAY..AS_OF; city's quoted prices x 1.3 in its last 14 days."""
    outcomes = [o for o in outcomes_from_bookings(load_bookings())
                if FIRST_DAY <= o["timestamp"].date() <= AS_OF]
    for o in outcomes:
        if o["property_id"] == SHIFTED and o["timestamp"].date() > AS_OF - timedelta(days=14):
            o["quoted_price"] *= 1.3
    return outcomes


class Prometheus:
    """Debian's prometheus on a free loopback port, scraping one target every second."""

    def __init__(self, tmp_path: Path, target: str):
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus not found: run `make system-deps` (installs Debian's prometheus package)")
        self.url = f"http://127.0.0.1:{free_port()}"
        config = tmp_path / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(MONITORING / "alerts.yml")],
            "scrape_configs": [{"job_name": "bookloop-worker", "static_configs": [{"targets": [target]}]}]}))
        self.log = tmp_path / "prometheus.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address={self.url[len('http://'):]}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def get(self, path: str, **params: str) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
            return json.loads(response.read())

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited: {self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=1)
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"prometheus not ready: {self.log.read_text()[-2000:]}")

    def values(self, promql: str) -> dict[tuple, float]:
        """Instant query -> {(property_id, feature): value}."""
        data = self.get("/api/v1/query", query=promql)["data"]["result"]
        return {(r["metric"].get("property_id"), r["metric"].get("feature")): float(r["value"][1]) for r in data}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_landed(worker: WorkerProcess, expected: int, dead: int, timeout: float = 120) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = worker.metrics()
        if (m.get("bookloop_events_landed_total", 0) >= expected and m.get("bookloop_buffered_events", 1) == 0
                and m.get("bookloop_dead_lettered_total", 0) >= dead):
            return m
        time.sleep(0.5)
    raise AssertionError(f"not landed: {worker.metrics()}\n{worker.log_tail()}")


def wait_scraped(prometheus: Prometheus, promql: str, expected: dict, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (seen := prometheus.values(promql)) == expected:
            return seen
        time.sleep(0.5)
    raise AssertionError(f"Prometheus has {prometheus.values(promql)} for {promql}, the worker {expected}")


@pytest.fixture
def running(settings_factory, tmp_path):
    settings = settings_factory(tmp_path, flush_interval_seconds=1.0)
    ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    prometheus = Prometheus(tmp_path, f"{settings.web_host}:{settings.web_port}")
    try:
        worker.wait_ready()
        prometheus.wait_ready()
        yield settings, worker, prometheus
    finally:
        prometheus.stop()
        worker.stop()


def test_shifted_replay_shows_drift_in_prometheus(running):
    settings, worker, prometheus = running
    outcomes = shifted_outcomes()
    with OutcomePublisher(settings) as publisher:
        for record in outcomes:
            publisher.publish(record)
        publisher.publish_raw(b"not avro", key=b"junk")  # a dead letter, so every dashboard query has data
    wait_landed(worker, len(outcomes), dead=1)

    drifted = 'bookloop_drift_feature_drifted{feature="quoted_price"}'
    ks_p = 'bookloop_drift_ks_p_value{feature="quoted_price"}'
    batches = {prop: {f.feature: f for f in drift_for_property(settings, prop).result.features}["quoted_price"]
               for prop in (SHIFTED, UNTOUCHED)}
    batch = batches[SHIFTED]
    final = _final_evaluation(worker, settings, {(prop, "quoted_price"): b.ks_p_value for prop, b in batches.items()})
    wait_scraped(prometheus, ks_p, final)  # Prometheus has the final evaluation
    assert prometheus.values(drifted) == {(SHIFTED, "quoted_price"): 1.0, (UNTOUCHED, "quoted_price"): 0.0}
    psi = prometheus.values('bookloop_drift_psi{feature="quoted_price"}')
    assert psi[(SHIFTED, "quoted_price")] > 0.2 and psi[(UNTOUCHED, "quoted_price")] < 0.2
    assert prometheus.values(ks_p)[(UNTOUCHED, "quoted_price")] > 0.05

    # the batch CLI on the landed store gives the same numbers as the worker, and scipy the same as the CLI
    assert batch.ks_p_value == pytest.approx(final[(SHIFTED, "quoted_price")], abs=1e-9)
    assert batch.psi == pytest.approx(psi[(SHIFTED, "quoted_price")], abs=1e-9)
    reference, current = _landed_prices(settings.data_dir, SHIFTED)
    assert ks_2samp(reference, current).pvalue == pytest.approx(batch.ks_p_value, abs=1e-9)

    settled = worker.metrics()   # after both final evaluations: no window lands, nothing more is published
    assert settled["bookloop_drift_events_published_total"] == len(_drift_events(settings, settled))
    _check_metrics_page_and_dashboard(worker, prometheus)


def _final_evaluation(worker: WorkerProcess, settings, batch_p: dict[tuple, float]) -> dict[tuple, float]:
    """The worker's quoted_price KS p-values once it evaluated both properties on the whole landed
    store (drift is re-evaluated at most every drift_eval_interval_seconds, each property on its own)."""
    deadline = time.monotonic() + settings.drift_eval_interval_seconds + 30
    while True:
        final = {key: value for key, value in _worker_values(worker, "bookloop_drift_ks_p_value").items()
                 if key[1] == "quoted_price"}
        if final.keys() == batch_p.keys() and all(final[k] == pytest.approx(p, abs=1e-9) for k, p in batch_p.items()):
            return final
        if time.monotonic() > deadline:
            return final
        time.sleep(0.5)


def _worker_values(worker: WorkerProcess, name: str) -> dict[tuple, float]:
    text = urllib.request.urlopen(worker.metrics_url, timeout=10).read().decode()
    return {(s.labels.get("property_id"), s.labels.get("feature")): s.value
            for family in text_string_to_metric_families(text) for s in family.samples if s.name == name}


def _landed_prices(data_dir: str, prop: str) -> tuple[list[float], list[float]]:
    current_start = AS_OF - timedelta(days=6)
    rows = duckdb.sql(
        f"select date::varchar, quoted_price from read_parquet('{data_dir}/outcomes/property_id={prop}/*/*.parquet', "
        f"hive_partitioning=true) where date >= '{current_start - timedelta(days=30)}'").fetchall()
    return ([p for d, p in rows if d < current_start.isoformat()],
            [p for d, p in rows if d >= current_start.isoformat()])


def _drift_events(settings, metrics: dict, timeout: float = 20) -> list[tuple[bytes, dict]]:
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": "drift-reader",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(settings.drift_topic, p, 0) for p in range(settings.partitions)])
    events, deadline = [], time.monotonic() + timeout
    while len(events) < metrics["bookloop_drift_events_published_total"] and time.monotonic() < deadline:
        for msg in consumer.consume(100, timeout=0.5):
            if not msg.error():
                events.append((msg.key(), default_codec().decode(msg.value(), "bookloop.DriftDetected")))
    consumer.close()
    assert all(key == event["property_id"].encode() for key, event in events)
    return events


def _check_metrics_page_and_dashboard(worker: WorkerProcess, prometheus: Prometheus) -> None:
    page = urllib.request.urlopen(worker.metrics_url, timeout=10).read().decode()
    checked = subprocess.run(["promtool", "check", "metrics"], input=page, capture_output=True, text=True)
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")
    board = json.loads((MONITORING / "grafana" / "dashboards" / "bookloop-drift.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for expr in exprs:  # the real PromQL engine accepts every dashboard query, and it has data
        promql = expr.replace("$property", ".*").replace("$__rate_interval", "1m")
        answer = prometheus.get("/api/v1/query", query=promql)
        assert answer["status"] == "success" and answer["data"]["result"], promql
    groups = prometheus.get("/api/v1/rules")["data"]["groups"]
    assert {g["name"] for g in groups} == {"bookloop-drift", "bookloop-ingestion", "bookloop-retrain"}
