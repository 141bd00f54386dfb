import json
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from batch import training
from batch.cli import cli
from batch.registry import Registry
from batch.retrain import RetrainOptions, retrain_property
from batch.retrain_command import parse_as_of

END = datetime(2017, 8, 31, tzinfo=timezone.utc)
AS_OF = END + timedelta(days=1)


def options(**changes):
    return RetrainOptions(**{"model_types": ("conversion",), "cutoff": AS_OF, "min_total": 1000,
                             "min_new": 100, **changes})


def test_first_run_deploys_second_skips_new_data_retrains(tmp_path, outcome_store):
    outcome_store(tmp_path, n=2000)
    [first] = retrain_property(str(tmp_path), "city", options(), num_threads=1)
    assert first.status == "retrained" and first.metrics["auc"] > 0.8
    assert [e["deployed"] for e in first.events] == [True]
    assert Registry(tmp_path).deployed_version("city", "conversion") == first.version
    assert "Proceeding with retrain: Ready to retrain: 2000 total outcomes, no model trained yet" in first.lines

    [second] = retrain_property(str(tmp_path), "city", options(), num_threads=1)
    assert second.status == "skipped" and second.events == []
    assert second.reason.startswith("Insufficient new outcomes: 2000 total outcomes, 0 new in the 7 days")

    outcome_store(tmp_path, n=400, days=5, end=END + timedelta(days=5), seed=2)
    [third] = retrain_property(str(tmp_path), "city", options(cutoff=END + timedelta(days=6)), num_threads=1)
    assert third.status == "retrained" and third.previous_version == first.version
    assert third.previous_metrics is not None and "Previous model AUC" in "\n".join(third.lines)


def test_forced_worse_model_is_not_deployed(tmp_path, outcome_store, monkeypatch):
    outcome_store(tmp_path, n=2000)
    [live] = retrain_property(str(tmp_path), "city", options(), num_threads=1)
    # the new model loses its strongest feature, so it is far worse on the same validation rows
    monkeypatch.setitem(training.EXCLUDED_FEATURES, "conversion", ("features.signal",))
    [worse] = retrain_property(str(tmp_path), "city", options(force=True, trigger="force"), num_threads=1)
    assert worse.status == "not_deployed" and worse.metrics["auc"] < worse.previous_metrics["auc"] - 0.01
    assert worse.previous_metrics["auc"] == pytest.approx(live.metrics["auc"])
    registry = Registry(tmp_path)
    assert registry.deployed_version("city", "conversion") == live.version
    assert [(e["version"], e["deployed"], e["trigger"]) for e in worse.events] == [
        (worse.version, False, "force"), (live.version, True, "schedule")]
    assert registry.metadata("city", "conversion", worse.version)["deploy_decision"]["deployed"] is False
    assert "❌ New model not deployed (performance regression)" in worse.lines[-1]


def test_a_failing_model_does_not_stop_the_others(tmp_path, outcome_store):
    outcome_store(tmp_path, n=150)  # too few rows to split, but enough for the forced run to try
    results = retrain_property(str(tmp_path), "city", options(model_types=("conversion", "revpar"), force=True))
    assert [r.status for r in results] == ["failed", "failed"]
    assert "cannot be split by time" in results[0].reason and results[0].lines[-1].startswith("❌ Failed")


def test_parse_as_of():
    assert parse_as_of("2017-08-31") == datetime(2017, 9, 1, tzinfo=timezone.utc)
    assert parse_as_of("2017-08-31T12:00:00") == datetime(2017, 8, 31, 12, tzinfo=timezone.utc)
    now = datetime(2020, 1, 1, tzinfo=timezone.utc)
    assert parse_as_of(None, now) == now


def run(*args):
    return CliRunner().invoke(cli, ["retrain", *args], catch_exceptions=False)


def test_cli_prints_the_seed_blocks_and_summary(tmp_path, outcome_store):
    outcome_store(tmp_path, n=1500)
    result = run("--property-id", "city", "--model-type", "conversion", "--as-of", "2017-08-31",
                 "--no-publish", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "Retraining conversion model for property city\n" + "=" * 80 in result.output
    assert "✅ New model deployed: " in result.output
    assert "RETRAINING SUMMARY" in result.output and "Successfully retrained: 1\n" in result.output
    listed = CliRunner().invoke(cli, ["models", "list", "--json", "--data-dir", str(tmp_path)])
    [row] = json.loads(listed.output)
    assert row["deployed"] and row["trigger"] == "manual"


def test_cli_json_across_two_properties_in_processes(tmp_path, outcome_store):
    outcome_store(tmp_path, "city", n=1200)
    outcome_store(tmp_path, "resort", n=1100, seed=3)
    result = run("--all-properties", "--model-type", "conversion", "--as-of", "2017-08-31",
                 "--no-publish", "--json", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["summary"] == {"total_properties": 2, "total_models": 2, "retrained": 2,
                                 "not_deployed": 0, "skipped": 0, "failed": 0}
    assert {r["property_id"] for r in report["results"]} == {"city", "resort"}


def test_cli_errors(tmp_path, outcome_store):
    outcome_store(tmp_path, n=100)
    usage = run("--data-dir", str(tmp_path))
    assert usage.exit_code == 2 and "give exactly one of" in usage.output
    unknown = run("--property-id", "nowhere", "--no-publish", "--data-dir", str(tmp_path))
    assert unknown.exit_code == 1 and "Error: no outcomes for 'nowhere'" in unknown.output
    for text in ("31.08.2017", "2017-02-30"):   # a bad date is a usage error, as in drift and stats
        bad_date = run("--all-properties", "--as-of", text, "--no-publish", "--data-dir", str(tmp_path))
        assert bad_date.exit_code == 2 and f"'{text}' is neither YYYY-MM-DD nor an ISO date-time" in bad_date.output
    for text in ("9999-12-31", "0001-01-01", "1969-12-31T12:00:00"):
        far = run("--property-id", "city", "--as-of", text, "--no-publish", "--data-dir", str(tmp_path))
        assert far.exit_code == 2 and f"'{text}' must lie between 1970-01-02 and 9999-01-01" in far.output
    failed = run("--all-properties", "--force", "--no-publish", "--data-dir", str(tmp_path))
    assert failed.exit_code == 1 and "Failed: 3" in failed.output
