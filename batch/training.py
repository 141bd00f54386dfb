"""Training data from the parquet store, and LightGBM models for the three model types.

- conversion: binary, target `accepted`, all outcomes; AUC (also logloss and accuracy).
- adr: regression on `final_price` (or `quoted_price` when final is missing), accepted outcomes
  only; RMSE (also MAE). The prices are the target, so they are not features.
- revpar: regression on revenue per quote = accepted x price, all outcomes; RMSE (also MAE).
  The quoted price is a feature: the model answers "what does a quote at this price earn".

Validation is time-ordered: the newest VALIDATION_SHARE of the model's rows by event time (rows
sharing the boundary's timestamp all go to validation), never a random sample. The number of
boosting rounds is chosen by early stopping on the newest EARLY_STOP_SHARE of the training part,
then the model is refit on the whole training part, so the validation rows stay unseen.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from consumers.model_features import FeatureSpec, flatten_rows
from consumers.store_location import describe, store_filesystem, subfolders
from consumers.paths import decode_segment
from schemas.errors import BookloopError

MODEL_TYPES = ("conversion", "adr", "revpar")
VALIDATION_SHARE = 0.2
EARLY_STOP_SHARE = 0.1
MAX_ROUNDS = 2000
EARLY_STOPPING_ROUNDS = 50
MIN_ROWS = 50  # per side of each split
EXCLUDED_FEATURES = {"conversion": (), "adr": ("quoted_price",), "revpar": ()}
PARAMS = {"learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 50, "feature_fraction": 0.8,
          "cat_smooth": 10.0, "seed": 7, "deterministic": True, "force_row_wise": True, "verbose": -1}
_OBJECTIVES = {"conversion": "binary", "adr": "regression", "revpar": "regression"}


class TrainingError(BookloopError):
    """The data cannot train a model (too few rows, a single class, no store)."""


@dataclass(frozen=True)
class TrainedModel:
    booster: lgb.Booster
    spec: FeatureSpec
    metrics: dict[str, float]
    best_iteration: int
    train_rows: int
    validation_rows: int
    window: tuple[datetime, datetime]  # event time of the first and last row used
    validation_frame: pd.DataFrame  # flattened validation rows, to score other models on them
    validation_target: np.ndarray
    params: dict
    seconds: float


def list_properties(data_dir: str | Path, store: str | None = None) -> list[str]:
    """The properties in the store: `<data_dir>/outcomes`, or `store` (a path or URI, see store_location)."""
    names = subfolders(*store_filesystem(data_dir, store))
    if names is None:
        raise TrainingError(f"no outcome store at {describe(data_dir, store)}: run the worker (or `bookloop demo`) first")
    return sorted(decode_segment(name.split("=", 1)[1]) for name in names if name.startswith("property_id="))


def load_outcomes(data_dir: str | Path, property_id: str, cutoff: datetime, store: str | None = None) -> pd.DataFrame:
    """The property's outcomes with event time before `cutoff`, one row per event_id, oldest first."""
    filesystem, root = store_filesystem(data_dir, store)
    if subfolders(filesystem, root) is None:
        raise TrainingError(f"no outcome store at {describe(data_dir, store)}: run the worker (or `bookloop demo`) first")
    dataset = ds.dataset(root, filesystem=filesystem, format="parquet", partitioning="hive")
    limit = pa.scalar(cutoff, type=pa.timestamp("ms", tz="UTC"))
    table = dataset.to_table(filter=(pc.field("property_id") == property_id) & (pc.field("timestamp") < limit))
    return dedupe(table.to_pandas())


def dedupe(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep the first landed copy of every event_id (by event time, then Kafka position)."""
    ordered = frame.sort_values(["timestamp", "event_id", "source_partition", "source_offset"], kind="stable")
    return ordered.drop_duplicates("event_id", keep="first").reset_index(drop=True)


def target_rows(model_type: str, outcomes: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows a model type learns from and its target, in the same (time) order."""
    price = outcomes["final_price"].fillna(outcomes["quoted_price"]).to_numpy(dtype=float)
    accepted = outcomes["accepted"].to_numpy(dtype=bool)
    if model_type == "conversion":
        return outcomes, accepted.astype(float)
    if model_type == "adr":
        return outcomes[accepted].reset_index(drop=True), price[accepted]
    if model_type == "revpar":
        return outcomes, np.where(accepted, price, 0.0)
    raise TrainingError(f"unknown model type {model_type!r}; use one of {', '.join(MODEL_TYPES)}")


def time_split(times: np.ndarray, share: float) -> int:
    """Index where the newest `share` of time-sorted rows begins; equal times stay on one side."""
    cut = np.searchsorted(times, times[int(len(times) * (1 - share))], side="left")
    if cut < MIN_ROWS or len(times) - cut < MIN_ROWS:
        raise TrainingError(f"{len(times)} rows cannot be split by time into two parts of at least "
                            f"{MIN_ROWS} rows; wait for more outcomes")
    return int(cut)


def train(model_type: str, outcomes: pd.DataFrame, num_threads: int = 0) -> TrainedModel:
    """Fit a model of `model_type` on the older rows and evaluate it on the newest ones."""
    started = time.monotonic()
    rows, y = target_rows(model_type, outcomes)
    if len(rows) < 2 * MIN_ROWS:
        raise TrainingError(f"only {len(rows)} rows for a {model_type} model; need {2 * MIN_ROWS}")
    times = rows["timestamp"].dt.as_unit("ms").astype("int64").to_numpy()
    flat = flatten_rows(rows)
    split = time_split(times, VALIDATION_SHARE)
    spec = FeatureSpec.fit(flat.iloc[:split], exclude=EXCLUDED_FEATURES[model_type])
    matrix = spec.matrix(flat)
    params = {**PARAMS, "objective": _OBJECTIVES[model_type], "num_threads": num_threads}
    rounds = _early_stopped_rounds(params, spec, matrix[:split], y[:split], times[:split])
    booster = lgb.train(params, _dataset(spec, matrix[:split], y[:split]), num_boost_round=rounds)
    metrics = evaluate(model_type, y[split:], booster.predict(matrix[split:]))
    window = (rows["timestamp"].iloc[0].to_pydatetime(), rows["timestamp"].iloc[-1].to_pydatetime())
    return TrainedModel(booster, spec, metrics, rounds, split, len(rows) - split, window,
                        flat.iloc[split:].reset_index(drop=True), y[split:], params, time.monotonic() - started)


def _early_stopped_rounds(params: dict, spec: FeatureSpec, matrix: np.ndarray, y: np.ndarray,
                          times: np.ndarray) -> int:
    cut = time_split(times, EARLY_STOP_SHARE)
    fit_set = _dataset(spec, matrix[:cut], y[:cut])
    stop_set = _dataset(spec, matrix[cut:], y[cut:], reference=fit_set)
    booster = lgb.train(params, fit_set, num_boost_round=MAX_ROUNDS, valid_sets=[stop_set],
                        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)])
    return max(1, booster.best_iteration)


def _dataset(spec: FeatureSpec, matrix: np.ndarray, y: np.ndarray, reference=None) -> lgb.Dataset:
    return lgb.Dataset(matrix, y, feature_name=[_lgb_name(n) for n in spec.names],
                       categorical_feature=spec.categorical_indices, reference=reference,
                       free_raw_data=False)


def _lgb_name(name: str) -> str:
    """LightGBM refuses some characters in feature names; the spec keeps the real names."""
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)


def evaluate(model_type: str, y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    if model_type != "conversion":
        error = predicted - y
        return {"rmse": float(np.sqrt(np.mean(error ** 2))), "mae": float(np.mean(np.abs(error)))}
    positives = int(y.sum())
    if positives in (0, len(y)):
        raise TrainingError(f"the {len(y)} validation rows are all {'accepted' if positives else 'rejected'}; "
                            "AUC needs both outcomes")
    clipped = np.clip(predicted, 1e-15, 1 - 1e-15)
    logloss = -np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))
    return {"auc": roc_auc(y, predicted), "logloss": float(logloss),
            "accuracy": float(np.mean((predicted >= 0.5) == (y == 1)))}


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve via the rank-sum statistic (ties count half)."""
    ranks = pd.Series(score).rank(method="average").to_numpy()
    positives = y == 1
    n_pos, n_neg = positives.sum(), (~positives).sum()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
