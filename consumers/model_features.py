"""Model inputs from outcome rows: the one feature preparation used to train and to predict.

Training (batch/training.py) fits a FeatureSpec on its training rows and saves it with the model
(metadata.json); the ModelFollower rebuilds the spec from there, so categories, column order and
the handling of unknown or missing values are identical at training and prediction time.

Rows come in the parquet store's layout: a DataFrame read from the store, or dicts with the same
columns. `features` may be JSON text (as stored) or a dict; an Avro-shaped record with a nested
`context` works too. Every `features` key becomes a column named "features.<key>".
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd

from consumers.rows import CONTEXT_FIELDS

FEATURE_PREFIX = "features."
# Store columns a model may use. Never: accepted, final_price and time_to_book (known only after
# the outcome), event_id, timestamp, the source columns, property_id and date.
CANDIDATE_COLUMNS = ("quoted_price", "comp_p10", "comp_p50", "comp_p90") + CONTEXT_FIELDS
MIN_COVERAGE = 0.01  # a column set in fewer than 1 % of the training rows is not a feature


@dataclass(frozen=True)
class Feature:
    name: str
    categories: tuple[str, ...] | None = None  # None: numeric; else the categories, code = index


@dataclass(frozen=True)
class FeatureSpec:
    """Which columns feed a model, in order, and how each becomes a number."""

    features: tuple[Feature, ...]

    @classmethod
    def fit(cls, frame: pd.DataFrame, exclude: Iterable[str] = ()) -> "FeatureSpec":
        """The spec for a flattened training frame (see `flatten_rows`)."""
        excluded = set(exclude)
        names = [c for c in frame.columns
                 if (c in CANDIDATE_COLUMNS or c.startswith(FEATURE_PREFIX)) and c not in excluded]
        features = []
        for name in sorted(names):
            column = frame[name]
            if column.notna().mean() < MIN_COVERAGE:
                continue
            if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
                features.append(Feature(name))
            else:
                categories = sorted(set(_as_text(column).dropna()))
                features.append(Feature(name, tuple(categories)))
        return cls(tuple(features))

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def categorical_indices(self) -> list[int]:
        return [i for i, f in enumerate(self.features) if f.categories is not None]

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """Float matrix, one column per feature: categories as their code, unknown/missing as NaN."""
        out = np.full((len(frame), len(self.features)), np.nan)
        for i, feature in enumerate(self.features):
            if feature.name not in frame.columns:
                continue
            column = frame[feature.name]
            if feature.categories is None:
                out[:, i] = pd.to_numeric(column.astype(object), errors="coerce").astype("float64")
            else:
                codes = pd.Index(feature.categories).get_indexer(_as_text(column))
                out[:, i] = np.where(codes >= 0, codes, np.nan)
        return out

    def to_dict(self) -> dict:
        return {"features": [{"name": f.name, "categories": None if f.categories is None else list(f.categories)}
                             for f in self.features]}

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureSpec":
        return cls(tuple(Feature(f["name"], None if f["categories"] is None else tuple(f["categories"]))
                         for f in data["features"]))


def flatten_rows(rows: pd.DataFrame | Iterable[dict]) -> pd.DataFrame:
    """One column per stored field and per `features` key ("features.<key>")."""
    if isinstance(rows, pd.DataFrame):
        frame = rows.reset_index(drop=True)
    else:
        frame = pd.DataFrame.from_records([_flat_record(r) for r in rows])
    if "features" not in frame.columns:
        return frame
    maps = [_feature_map(value) for value in frame["features"]]
    expanded = pd.DataFrame.from_records(maps, index=frame.index).add_prefix(FEATURE_PREFIX)
    return pd.concat([frame.drop(columns=["features"]), expanded], axis=1)


def _flat_record(record: dict) -> dict:
    flat = {k: v for k, v in record.items() if k != "context"}
    flat.update(record.get("context") or {})
    return flat


def _feature_map(value: Any) -> dict:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return {}
    if isinstance(value, dict):
        return value
    return json.loads(value)


def _as_text(column: pd.Series) -> pd.Series:
    """Category labels: every present value as str (the same at training and prediction time)."""
    return column.astype(object).map(lambda v: None if _missing(v) else str(v))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA
