"""Training data from the parquet store, and LightGBM models for the three model types.

- conversion: binary, target `accepted`, all outcomes; AUC (also logloss and accuracy).
- adr: regression on `final_price` (or `quoted_price` when final is missing), accepted outcomes
  only; RMSE (also MAE). The prices are the target, so they are not features.
- revpar: regression on revenue per quote = accepted x price, all outcomes; RMSE (also MAE).
  The quoted price is a feature: the model answers "what does a quote at this price earn".

Validation is time-ordered: the newest VALIDATION_SHARE of the model's rows by event time (rows
sharing the boundary's timestamp all go to validation), never a random sample. The number of
boosting rounds is chosen by early stopping on the newest EARLY_STOP_SHARE of the training part,
then the model is refit on the whole training part, so the validation rows stay unseen. Both runs
use one LightGBM Dataset of the training part (binned once; the early-stopping run takes subsets).

A property's outcomes are read once (`load_table`) and prepared once for all model types
(`TrainingData`; the model inputs come from batch/retrain_features.py, equal to
consumers/model_features.py, which the follower predicts with).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import Callable

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from batch.retrain_features import ColumnFeatures, RowFeatures, column_features
from consumers.model_features import FeatureSpec
from consumers.paths import decode_segment, encode_segment, outcomes_root
from consumers.rows import ROW_SCHEMA
from consumers.store_files import first_per_event_id
from consumers.store_location import describe, is_uri, scan_store, store_filesystem, subfolders
from consumers.store_scan import PROPERTY_PREFIX, scan
from schemas.errors import BookloopError

MODEL_TYPES = ("conversion", "adr", "revpar")
VALIDATION_SHARE = 0.2
EARLY_STOP_SHARE = 0.1
MAX_ROUNDS = 2000
EARLY_STOPPING_ROUNDS = 20
MIN_ROWS = 50  # per side of each split
EXCLUDED_FEATURES = {"conversion": (), "adr": ("quoted_price",), "revpar": ()}
# A higher learning rate than the seed's 0.05 needs fewer rounds (city-0: 9.2 s -> 4.6 s); more data per leaf,
# a little L2 and 63 bins keep the quality (README, Retraining: measured conversion AUC within 0.002).
PARAMS = {"learning_rate": 0.15, "num_leaves": 31, "min_data_in_leaf": 100, "lambda_l2": 1.0,
          "feature_fraction": 0.8, "max_bin": 63, "cat_smooth": 10.0, "seed": 7, "deterministic": True,
          "force_row_wise": True, "verbose": -1}
_OBJECTIVES = {"conversion": "binary", "adr": "regression", "revpar": "regression"}
_LANDING_ORDER = ("timestamp", "event_id", "source_partition", "source_offset")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


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
    validation_target: np.ndarray
    params: dict
    seconds: float
    _validation_rows: Callable[[], pd.DataFrame] = field(repr=False, compare=False)

    @cached_property
    def validation_frame(self) -> pd.DataFrame:
        """The flattened validation rows (built on first use), to score other models on them."""
        return self._validation_rows()


def list_properties(data_dir: str | Path, store: str | None = None) -> list[str]:
    """The properties in the store: `<data_dir>/outcomes`, or `store` (a path or URI, see store_location)."""
    names = subfolders(*store_filesystem(data_dir, store))
    if names is None:
        raise TrainingError(f"no outcome store at {describe(data_dir, store)}: run the worker (or `bookloop demo`) first")
    return sorted(decode_segment(name.split("=", 1)[1]) for name in names if name.startswith("property_id="))


def load_outcomes(data_dir: str | Path, property_id: str, cutoff: datetime, store: str | None = None) -> pd.DataFrame:
    """The property's outcomes with event time before `cutoff`, one row per event_id, oldest first."""
    return load_table(data_dir, property_id, cutoff, store).to_pandas()


def load_table(data_dir: str | Path, property_id: str, cutoff: datetime, store: str | None = None) -> pa.Table:
    """Like `load_outcomes`, as an Arrow table in the store layout (ROW_SCHEMA). Only the property's
    folder is read, each date folder as one snapshot (consumers/store_scan.py)."""
    if subfolders(*store_filesystem(data_dir, store)) is None:
        raise TrainingError(f"no outcome store at {describe(data_dir, store)}: run the worker (or `bookloop demo`) first")
    if store and is_uri(store):
        found = scan_store(store, property_id, ROW_SCHEMA.names)
    else:
        root = Path(store) if store else outcomes_root(data_dir)
        found = scan(root / f"{PROPERTY_PREFIX}{encode_segment(property_id)}", ROW_SCHEMA.names)
    table = ROW_SCHEMA.empty_table() if found is None else _with_all_columns(found.table)
    limit = pa.scalar(cutoff, type=pa.timestamp("ms", tz="UTC"))
    table = table.combine_chunks()  # one chunk per part file until here; filtering and sorting one is cheaper
    return dedupe(table.filter(pc.less(table.column("timestamp"), limit)))


def _with_all_columns(table: pa.Table) -> pa.Table:
    """Columns no file had (an older store) as nulls, in ROW_SCHEMA order."""
    return pa.table({f.name: table.column(f.name) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
                     for f in ROW_SCHEMA})


def dedupe(table: pa.Table) -> pa.Table:
    """Keep the first landed copy of every event_id (by event time, then Kafka position), oldest first."""
    return first_per_event_id(table.sort_by([(c, "ascending") for c in _LANDING_ORDER]))


@dataclass(frozen=True)
class TrainingData:
    """One property's outcomes (one row per event_id, oldest first), ready for every model type."""
    table: pa.Table          # store layout
    times: np.ndarray        # event time, epoch ms
    accepted: np.ndarray
    price: np.ndarray        # final_price, else quoted_price
    features: ColumnFeatures | RowFeatures

    @classmethod
    def from_table(cls, table: pa.Table) -> "TrainingData":
        final = table.column("final_price").to_numpy(zero_copy_only=False).astype(float)
        quoted = table.column("quoted_price").to_numpy(zero_copy_only=False).astype(float)
        return cls(table, table.column("timestamp").cast(pa.int64()).to_numpy(zero_copy_only=False),
                   table.column("accepted").fill_null(False).to_numpy(zero_copy_only=False).astype(bool),
                   np.where(np.isnan(final), quoted, final), column_features(table) or RowFeatures(table))

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> "TrainingData":
        """From `load_outcomes` rows (or any DataFrame in the store layout, oldest first)."""
        return cls.from_table(pa.Table.from_pandas(frame, preserve_index=False))

    def __len__(self) -> int:
        return len(self.times)


def target_rows(model_type: str, outcomes: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows a model type learns from and its target, in the same (time) order."""
    price = outcomes["final_price"].fillna(outcomes["quoted_price"]).to_numpy(dtype=float)
    rows, y = _target(model_type, outcomes["accepted"].to_numpy(dtype=bool), price)
    return outcomes.iloc[rows].reset_index(drop=True), y


def _target(model_type: str, accepted: np.ndarray, price: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions of the model's rows, its target)."""
    if model_type == "conversion":
        return np.arange(len(accepted)), accepted.astype(float)
    if model_type == "adr":
        return np.flatnonzero(accepted), price[accepted]
    if model_type == "revpar":
        return np.arange(len(accepted)), np.where(accepted, price, 0.0)
    raise TrainingError(f"unknown model type {model_type!r}; use one of {', '.join(MODEL_TYPES)}")


def time_split(times: np.ndarray, share: float) -> int:
    """Index where the newest `share` of time-sorted rows begins; equal times stay on one side."""
    cut = np.searchsorted(times, times[int(len(times) * (1 - share))], side="left")
    if cut < MIN_ROWS or len(times) - cut < MIN_ROWS:
        raise TrainingError(f"{len(times)} rows cannot be split by time into two parts of at least "
                            f"{MIN_ROWS} rows; wait for more outcomes")
    return int(cut)


def train(model_type: str, outcomes: TrainingData | pd.DataFrame, num_threads: int = 0) -> TrainedModel:
    """Fit a model of `model_type` on the older rows and evaluate it on the newest ones."""
    started = time.monotonic()
    data = outcomes if isinstance(outcomes, TrainingData) else TrainingData.from_frame(outcomes)
    rows, y = _target(model_type, data.accepted, data.price)
    if len(rows) < 2 * MIN_ROWS:
        raise TrainingError(f"only {len(rows)} rows for a {model_type} model; need {2 * MIN_ROWS}")
    times = data.times[rows]
    split = time_split(times, VALIDATION_SHARE)
    spec, matrix = data.features.fit_matrix(rows, split, EXCLUDED_FEATURES[model_type])
    params = {**PARAMS, "objective": _OBJECTIVES[model_type], "num_threads": num_threads}
    train_set = _dataset(spec, matrix[:split], y[:split], params)
    rounds = _early_stopped_rounds(params, train_set, time_split(times[:split], EARLY_STOP_SHARE))
    booster = lgb.train(params, train_set, num_boost_round=rounds, keep_training_booster=True)
    metrics = evaluate(model_type, y[split:], booster.predict(matrix[split:]))
    window = (_utc(times[0]), _utc(times[-1]))
    validation = rows[split:]
    return TrainedModel(booster, spec, metrics, rounds, split, len(rows) - split, window, y[split:], params,
                        time.monotonic() - started, lambda: data.features.frame(validation))


def _early_stopped_rounds(params: dict, train_set: lgb.Dataset, cut: int) -> int:
    """Rounds that minimise the loss on the training rows from `cut` on, learning from those before."""
    fit_set = train_set.subset(np.arange(cut))
    stop_set = train_set.subset(np.arange(cut, train_set.num_data()))
    booster = lgb.train(params, fit_set, num_boost_round=MAX_ROUNDS, valid_sets=[stop_set],
                        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
                        keep_training_booster=True)  # only its best iteration is used: skip the model copy
    return max(1, booster.best_iteration)


def _dataset(spec: FeatureSpec, matrix: np.ndarray, y: np.ndarray, params: dict) -> lgb.Dataset:
    return lgb.Dataset(matrix, y, feature_name=[_lgb_name(n) for n in spec.names],
                       categorical_feature=spec.categorical_indices, params=params,
                       free_raw_data=True).construct()


def _lgb_name(name: str) -> str:
    """LightGBM refuses some characters in feature names; the spec keeps the real names."""
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)


def _utc(millis: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=int(millis))


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
