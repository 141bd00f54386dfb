"""Retrain -> ModelUpdated on the real broker -> ModelFollower (fresh instances and a fresh process)."""
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from confluent_kafka import Producer

from batch import training
from batch.models_command import rollback
from batch.registry import Registry, event_record
from batch.retrain_command import RetrainRequest, run_retrain_command
from batch.training import load_outcomes
from consumers.model_artifacts import artifact_path
from consumers.model_features import FeatureSpec, flatten_rows
from consumers.model_follower import ModelFollower
from producers.model_events import ModelEventPublisher
from schemas.codec import default_codec

REPO = Path(__file__).resolve().parents[2]
AS_OF = "2017-08-31"


def request(**changes):
    values = dict(all_properties=False, property_id="city", model_type="conversion", force=False,
                  min_new=100, min_total=1000, as_of=AS_OF, on_drift=False, publish=True, as_json=True)
    values.update(changes)
    return RetrainRequest(**values)


def wait_for(condition, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def follow_once_in_a_fresh_process(settings) -> dict:
    env = {**os.environ, **settings.to_env()}
    done = subprocess.run([sys.executable, "-m", "batch.cli", "follow-models", "--once", "--json"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_fresh_follower_process_rebuilds_both_models_and_predicts_like_the_booster(
        settings_factory, outcome_store):
    settings = settings_factory()
    outcome_store(settings.data_dir, "city", n=1500)
    outcome_store(settings.data_dir, "resort", n=1200, seed=3)
    assert run_retrain_command(settings, request(all_properties=True, property_id=None)) == 0
    registry = Registry(settings.data_dir)
    live = {f"{p}/conversion": registry.deployed_version(p, "conversion") for p in ("city", "resort")}
    assert None not in live.values()

    assert follow_once_in_a_fresh_process(settings) == live
    with ModelFollower(settings) as follower:
        assert follower.versions() == live
        rows = load_outcomes(settings.data_dir, "resort", datetime.now(timezone.utc)).tail(300)
        meta = registry.metadata("resort", "conversion", live["resort/conversion"])
        booster = lgb.Booster(model_file=str(artifact_path(meta["artifact_uri"])))
        expected = booster.predict(FeatureSpec.from_dict(meta["feature_spec"]).matrix(flatten_rows(rows)))
        np.testing.assert_array_equal(follower.predict("resort", "conversion", rows), expected)
        as_dicts = follower.predict("resort", "conversion", rows.to_dict("records"))
        np.testing.assert_array_equal(as_dicts, expected)


def test_follower_switches_on_deploys_and_rollback_but_not_on_losers(settings_factory, outcome_store,
                                                                     monkeypatch):
    settings = settings_factory()
    outcome_store(settings.data_dir, "city", n=1500)
    assert run_retrain_command(settings, request()) == 0
    registry = Registry(settings.data_dir)
    first = registry.deployed_version("city", "conversion")
    switches = []
    with ModelFollower(settings, on_switch=lambda m, prev: switches.append((prev, m.version))) as follower:
        assert follower.versions() == {"city/conversion": first}
        assert run_retrain_command(settings, request(force=True)) == 0  # same data: within tolerance
        second = registry.deployed_version("city", "conversion")
        wait_for(lambda: follower.versions() == {"city/conversion": second})

        monkeypatch.setitem(training.EXCLUDED_FEATURES, "conversion", ("features.signal",))
        assert run_retrain_command(settings, request(force=True)) == 0  # a loser: trained, not deployed
        loser = registry.versions("city", "conversion")[-1]
        assert registry.metadata("city", "conversion", loser)["deploy_decision"]["deployed"] is False

        rollback(settings, "city", "conversion", None)
        wait_for(lambda: follower.versions() == {"city/conversion": first})
    assert switches == [(None, first), (first, second), (second, first)]
    assert registry.deployed_version("city", "conversion") == first
    with ModelFollower(settings) as fresh:  # the compacted topic's last deployed event is the rollback
        assert fresh.versions() == {"city/conversion": first}


def test_follower_refuses_a_model_whose_sha256_does_not_match(settings_factory, outcome_store, caplog):
    settings = settings_factory()
    outcome_store(settings.data_dir, "city", n=1200)
    assert run_retrain_command(settings, request()) == 0
    registry = Registry(settings.data_dir)
    live = registry.deployed("city", "conversion")
    with ModelFollower(settings) as follower:
        bad = event_record({**live, "version": "v20990101_000000", "artifact_sha256": "0" * 64}, deployed=True)
        with ModelEventPublisher(settings) as publisher:
            publisher.publish(bad)
        wait_for(lambda: "not switching city/conversion to v20990101_000000" in caplog.text)
        assert follower.versions() == {"city/conversion": live["version"]}


def test_retrain_on_drift_consumes_drift_events_once(settings_factory, outcome_store):
    settings = settings_factory()
    outcome_store(settings.data_dir, "city", n=1200)
    outcome_store(settings.data_dir, "resort", n=1200, seed=3)
    assert run_retrain_command(settings, request(all_properties=True, property_id=None)) == 0
    before = Registry(settings.data_dir).deployed_version("city", "conversion")
    now = datetime.now(timezone.utc)
    drift = {"property_id": "city", "detected_at": now, "reference_start": now - timedelta(days=37),
             "current_start": now - timedelta(days=7), "current_end": now, "share_drifted": 0.5,
             "drifted_features": ["lead_time"], "evaluated_features": 2,
             "thresholds": {"ks_p_value": 0.05, "psi": 0.2, "share_drifted": 0.25, "min_samples": 50.0}}
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    producer.produce(settings.drift_topic, key=b"city", value=default_codec().encode(drift, "bookloop.DriftDetected"))
    assert producer.flush(10) == 0

    assert run_retrain_command(settings, request(property_id=None, on_drift=True)) == 0
    registry = Registry(settings.data_dir)
    after = registry.deployed("city", "conversion")
    assert after["version"] != before and after["trigger"] == "drift"
    assert len(registry.versions("resort", "conversion")) == 1  # no drift event for resort
    assert run_retrain_command(settings, request(property_id=None, on_drift=True)) == 0
    assert registry.versions("city", "conversion")[-1] == after["version"]  # the event was handled once


@pytest.fixture(autouse=True)
def _no_spawned_training(monkeypatch):
    """Keep these tests on one process: spawning training processes is covered by the unit tests."""
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
