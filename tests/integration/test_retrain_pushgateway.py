"""Retrain metrics against Debian's real prometheus-pushgateway (and promtool) on loopback.

`make system-deps` installs both; nothing here skips when they are missing.
"""
import os
import shutil
import subprocess
import time
import urllib.request

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from batch.retrain_command import RetrainRequest, run_retrain_command
from monitoring.batch_metrics import RetrainMetrics
from producers.embedded_broker import free_port
from schemas.settings import Settings


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: run `make system-deps` (Debian package prometheus-pushgateway/prometheus)"
    return path


@pytest.fixture
def pushgateway(tmp_path):
    port = free_port()
    proc = subprocess.Popen([tool("prometheus-pushgateway"), f"--web.listen-address=127.0.0.1:{port}",
                             f"--persistence.file={tmp_path / 'pushgateway.data'}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            urllib.request.urlopen(f"{url}/-/ready", timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "pushgateway did not start"
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)


def scrape(url: str) -> dict:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "instance"))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name.startswith("bookloop_retrain")}


def request(**changes):
    values = dict(all_properties=False, property_id="city", model_type="conversion", force=False,
                  min_new=100, min_total=1000, as_of="2017-08-31", on_drift=False, publish=False, as_json=True)
    return RetrainRequest(**{**values, **changes})


def test_retrain_pushes_its_metrics_and_a_failed_run_keeps_the_last_success(tmp_path, outcome_store,
                                                                           pushgateway, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    settings = Settings.from_env({}, data_dir=str(tmp_path), pushgateway_url=pushgateway)
    outcome_store(tmp_path, "city", n=1200)
    started = time.time()
    assert run_retrain_command(settings, request()) == 0
    job = (("job", "bookloop_retrain"),)
    pushed = scrape(pushgateway)
    model = (("job", "bookloop_retrain"), ("model_type", "conversion"), ("property_id", "city"))
    assert 0.8 < pushed[("bookloop_retrain_model_auc", model)] < 0.97
    assert pushed[("bookloop_retrain_model_deployed", model)] == 1
    assert pushed[("bookloop_retrain_models", job + (("status", "retrained"),))] == 1
    assert pushed[("bookloop_retrain_duration_seconds", job)] > 0
    success = pushed[("bookloop_retrain_last_success_timestamp_seconds", job)]
    assert started <= success <= time.time()

    outcome_store(tmp_path, "tiny", n=120, seed=5)
    assert run_retrain_command(settings, request(property_id="tiny", force=True)) == 1
    pushed = scrape(pushgateway)
    assert pushed[("bookloop_retrain_models", job + (("status", "failed"),))] == 1
    assert pushed[("bookloop_retrain_last_success_timestamp_seconds", job)] == success


def test_retrain_metric_names_pass_promtool():
    metrics = RetrainMetrics()
    metrics.record_model("city", "conversion", True, {"auc": 0.88})
    metrics.record_model("city", "adr", False, {"rmse": 20.0})
    metrics.record_run({"retrained": 1, "not_deployed": 1, "skipped": 0, "failed": 0}, 5.0, time.time())
    checked = subprocess.run([tool("promtool"), "check", "metrics"], input=generate_latest(metrics.registry),
                             capture_output=True, timeout=30)
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, b"")
