from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.training import (TrainingError, evaluate, list_properties, load_outcomes, roc_auc, target_rows,
                            time_split, train)
from consumers.model_features import flatten_rows
from consumers.rows import ROW_SCHEMA

END = datetime(2017, 8, 31, tzinfo=timezone.utc)


def test_load_dedupes_by_event_id_and_respects_the_cutoff(tmp_path, outcome_store):
    rows = outcome_store(tmp_path, "city", n=600, duplicates=150)
    outcome_store(tmp_path, "resort", n=200, seed=2)
    frame = load_outcomes(tmp_path, "city", END + timedelta(days=1))
    assert len(frame) == 600 and frame["event_id"].is_unique
    assert frame["timestamp"].is_monotonic_increasing
    cutoff = END - timedelta(days=10)
    early = load_outcomes(tmp_path, "city", cutoff)
    assert len(early) == sum(1 for r in rows if r[1] < cutoff.timestamp() * 1000)
    assert list_properties(tmp_path) == ["city", "resort"]


def test_files_of_an_older_layout_read_with_nulls_for_their_missing_columns(tmp_path, outcome_store):
    outcome_store(tmp_path, "city", n=1000)
    old = pq.read_table(next((tmp_path / "outcomes" / "property_id=city").rglob("*.parquet")))
    folder = tmp_path / "outcomes" / "property_id=city" / "date=2017-08-30"
    folder.mkdir(exist_ok=True)
    pq.write_table(old.drop_columns(["features", "comp_p10"]).slice(0, 3)
                   .set_column(0, "event_id", pa.array(["old-1", "old-2", "old-3"])), folder / "old.parquet")
    frame = load_outcomes(tmp_path, "city", END + timedelta(days=1))
    assert len(frame) == 1003 and list(frame.columns) == ROW_SCHEMA.names
    older = frame[frame["event_id"].str.startswith("old-")]
    assert older["features"].isna().all() and older["comp_p10"].isna().all()
    assert train("conversion", frame, num_threads=1).train_rows > 700


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(TrainingError, match="no outcome store"):
        list_properties(tmp_path)


def test_time_split_keeps_equal_times_together_and_validation_newest():
    times = np.array([1] * 100 + [2] * 80 + [3] * 20)
    cut = time_split(times, 0.2)  # the 80 % point falls inside the 2s: all of them go to validation
    assert cut == 100
    with pytest.raises(TrainingError, match="cannot be split"):
        time_split(np.array([5] * 500), 0.2)


def test_targets(tmp_path, outcome_store):
    outcome_store(tmp_path, n=300)
    frame = load_outcomes(tmp_path, "city", END + timedelta(days=1))
    _, conversion = target_rows("conversion", frame)
    adr_rows, adr = target_rows("adr", frame)
    _, revpar = target_rows("revpar", frame)
    assert conversion.sum() == frame["accepted"].sum() == len(adr_rows)
    np.testing.assert_allclose(adr, adr_rows["final_price"])
    np.testing.assert_allclose(revpar, np.where(frame["accepted"], frame["quoted_price"], 0.0))


def test_conversion_model_learns_and_validates_on_the_newest_rows(tmp_path, outcome_store):
    outcome_store(tmp_path, n=3000)
    frame = load_outcomes(tmp_path, "city", END + timedelta(days=1))
    model = train("conversion", frame, num_threads=1)
    assert 0.8 < model.metrics["auc"] < 0.97
    assert set(model.metrics) == {"auc", "logloss", "accuracy"}
    assert model.train_rows + model.validation_rows == 3000
    assert 550 <= model.validation_rows <= 700
    newest_train = frame["timestamp"].iloc[model.train_rows - 1]
    assert (model.validation_frame["timestamp"] >= newest_train).all()
    assert "accepted" not in model.spec.names and "final_price" not in model.spec.names
    # the follower's way (consumers.model_features, row by row) scores the validation rows the same
    follower_inputs = model.spec.matrix(flatten_rows(frame.iloc[model.train_rows:]))
    assert evaluate("conversion", model.validation_target, model.booster.predict(follower_inputs)) == model.metrics


def test_adr_model_does_not_see_the_price(tmp_path, outcome_store):
    outcome_store(tmp_path, n=1500)
    model = train("adr", load_outcomes(tmp_path, "city", END + timedelta(days=1)), num_threads=1)
    assert "quoted_price" not in model.spec.names
    assert set(model.metrics) == {"rmse", "mae"} and model.metrics["rmse"] > 0


def test_roc_auc_matches_the_pairwise_definition():
    y = np.array([0, 0, 1, 1, 0, 1])
    score = np.array([0.1, 0.4, 0.35, 0.8, 0.35, 0.9])
    pairs = [(p, n) for p in score[y == 1] for n in score[y == 0]]
    expected = np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs])
    assert roc_auc(y, score) == pytest.approx(expected)
