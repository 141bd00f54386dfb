"""`retrain --dask-scheduler`: a real 2-process LocalCluster trains the same models as the local
process pool, also when the store is read through a URI (here file://, as s3:// would be)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from distributed import LocalCluster

from batch import retrain
from batch.cli import cli
from batch.retrain import RetrainOptions, run_properties
from batch.training import MODEL_TYPES

CUTOFF = datetime(2017, 9, 1, tzinfo=timezone.utc)  # the day after the synthetic store ends
PROPERTIES = ["city", "resort"]


def fill(data_dir: Path, outcome_store) -> None:
    outcome_store(data_dir, "city", n=1500, seed=1)
    outcome_store(data_dir, "resort", n=1500, seed=2)


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local:
        yield local


def summary(results) -> dict:
    return {(r.property_id, r.model_type): (r.status, r.metrics, r.rows) for r in results}


def test_a_dask_cluster_trains_the_same_models_as_local_processes(tmp_path, outcome_store, cluster, monkeypatch):
    monkeypatch.setattr(retrain.os, "cpu_count", lambda: 2)   # the local pool: 2 processes, 1 thread each
    fill(tmp_path / "local", outcome_store)
    fill(tmp_path / "dask", outcome_store)
    local = run_properties(str(tmp_path / "local"), PROPERTIES, RetrainOptions(MODEL_TYPES, CUTOFF), lambda r: None)
    uri = (tmp_path / "dask" / "outcomes").as_uri()   # read through pyarrow.fs, as an s3:// store would be
    seen = []
    remote = run_properties(str(tmp_path / "dask"), PROPERTIES, RetrainOptions(MODEL_TYPES, CUTOFF, store=uri),
                            seen.append, dask_scheduler=cluster.scheduler_address)
    assert len(remote) == len(seen) == 6
    assert {r.status for r in remote} == {"retrained"}
    assert summary(remote) == summary(local)
    assert all(r.metrics["auc"] > 0.7 for r in remote if r.model_type == "conversion")
    for result in remote:   # the workers wrote the registry under the shared data_dir
        assert Path(result.artifact).is_file() and str(tmp_path / "dask") in result.artifact


def test_the_cli_retrains_on_the_cluster_and_reads_a_store_uri(tmp_path, outcome_store, cluster, monkeypatch):
    outcome_store(tmp_path / "landed", "city", n=1500, seed=1)
    monkeypatch.setenv("BOOKLOOP_STORE_URI", (tmp_path / "landed" / "outcomes").as_uri())
    result = CliRunner().invoke(cli, ["retrain", "--all-properties", "--model-type", "conversion", "--no-publish",
                                      "--as-of", "2017-09-01", "--json", "--data-dir", str(tmp_path / "registry"),
                                      "--dask-scheduler", cluster.scheduler_address])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert [(m["property_id"], m["status"]) for m in report["results"]] == [("city", "retrained")]
    assert (tmp_path / "registry" / "models" / "city" / "conversion").is_dir()


def test_an_unreachable_scheduler_is_one_clear_error(tmp_path, outcome_store, monkeypatch):
    monkeypatch.setattr("batch.retrain_dask.CONNECT_TIMEOUT_SECONDS", 1)
    outcome_store(tmp_path, "city", n=200, seed=1)
    result = CliRunner().invoke(cli, ["retrain", "--all-properties", "--no-publish", "--data-dir", str(tmp_path),
                                      "--dask-scheduler", "tcp://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'" in result.output

