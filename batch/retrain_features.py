"""Model inputs for retraining, built column-wise once per property.

`consumers.model_features` is the one definition of the model inputs (FeatureSpec: which columns,
their categories, how a row becomes a number); the follower predicts with it. Retraining needs that
spec and matrix for three model types over tens of thousands of rows per property, and the
row-wise code (json.loads and str() per value, per model type) was most of a retrain's time. So
`ColumnFeatures` computes the same spec and matrix from Arrow columns: the `features` JSON of all
rows is parsed once by Arrow's JSON reader, text columns are dictionary-encoded once, and each
model type's spec and matrix come from those codes.

Arrow reads JSON like json.loads + pandas for objects whose keys each hold numbers, booleans or
strings (date-like strings are re-read as strings; only integers beyond int64 differ: Arrow reads
them as doubles). Anything else (a key holding numbers and strings, nested values, non-objects,
text that is not one JSON object per row) makes `column_features` return None, and
`RowFeatures` runs the row-wise code itself. tests/unit/test_model_features.py checks that both
give the same spec and matrix.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from consumers.model_features import (CANDIDATE_COLUMNS, FEATURE_PREFIX, MIN_COVERAGE, Feature, FeatureSpec,
                                      flatten_rows)

NUMBER, FLAG, TEXT = "number", "flag", "text"
_FLAG_LABELS = ("False", "True")  # str() of the booleans, as the row-wise code labels them
_BLOCK_BYTES = 8 << 20  # JSON read in blocks of this size (fewer, larger blocks parse faster)


@dataclass(frozen=True)
class Column:
    """One candidate column of all rows. NUMBER: float64 values, NaN = missing. FLAG (a JSON
    boolean): codes 0/1 for False/True, -1 = missing. TEXT: codes into `labels`, -1 = missing."""
    kind: str
    values: np.ndarray
    labels: tuple[str, ...] = ()

    def present(self, rows: np.ndarray) -> np.ndarray:
        taken = self.values[rows]
        return ~np.isnan(taken) if self.kind == NUMBER else taken >= 0


class ColumnFeatures:
    """Every candidate column of one property's rows; `fit_matrix` per model type."""

    def __init__(self, columns: dict[str, Column], flat: pa.Table):
        self.columns = columns
        self._flat = flat  # store columns + one "features.<key>" column per key, for `frame`

    def fit_matrix(self, rows: np.ndarray, train_count: int, exclude=()) -> tuple[FeatureSpec, np.ndarray]:
        """Like FeatureSpec.fit(flat.iloc[:train_count], exclude) and its matrix(flat), where flat
        is flatten_rows of the store rows at `rows` (model rows, oldest first)."""
        spec = self.fit(rows, train_count, exclude)
        return spec, self.matrix(spec, rows)

    def fit(self, rows: np.ndarray, train_count: int, exclude=()) -> FeatureSpec:
        excluded = set(exclude)
        features = []
        for name in sorted(set(self.columns) - excluded):
            column = self.columns[name]
            present = column.present(rows)
            if present[:train_count].mean() < MIN_COVERAGE:
                continue
            # pandas gives a boolean column a numeric dtype only when no model row misses it
            if column.kind == NUMBER or (column.kind == FLAG and present.all()):
                features.append(Feature(name))
                continue
            labels = _FLAG_LABELS if column.kind == FLAG else column.labels
            codes = np.unique(column.values[rows[:train_count]])
            features.append(Feature(name, tuple(sorted(labels[c] for c in codes if c >= 0))))
        return FeatureSpec(tuple(features))

    def matrix(self, spec: FeatureSpec, rows: np.ndarray) -> np.ndarray:
        """Like spec.matrix(flatten_rows(store rows at `rows`)) for a spec fitted by `fit`."""
        out = np.full((len(rows), len(spec.features)), np.nan)
        for i, feature in enumerate(spec.features):
            column = self.columns.get(feature.name)
            if column is None:
                continue
            if column.kind == NUMBER:
                if feature.categories is not None:
                    raise ValueError(f"{feature.name} holds numbers but the spec has categories; "
                                     "use consumers.model_features for specs fitted elsewhere")
                out[:, i] = column.values[rows]
                continue
            labels = _FLAG_LABELS if column.kind == FLAG else column.labels
            # value of each code; the extra last entry is what code -1 (missing) indexes
            if feature.categories is None:  # pd.to_numeric of each value, as the row-wise code does
                lookup = pd.to_numeric(pd.Series(labels, dtype=object), errors="coerce").to_numpy(float)
                lookup = np.array([0.0, 1.0]) if column.kind == FLAG else lookup
            else:
                position = {label: float(j) for j, label in enumerate(feature.categories)}
                lookup = np.array([position.get(label, np.nan) for label in labels], dtype=float)
            out[:, i] = np.append(lookup, np.nan)[column.values[rows]]
        return out

    def frame(self, rows: np.ndarray) -> pd.DataFrame:
        """flatten_rows of the store rows at `rows`, for consumers.model_features (other models' specs)."""
        return self._flat.take(pa.array(rows)).to_pandas()


class RowFeatures:
    """The row-wise consumers.model_features code, for `features` Arrow cannot read like json.loads."""

    def __init__(self, table: pa.Table):
        self._frame = table.to_pandas()

    def fit_matrix(self, rows: np.ndarray, train_count: int, exclude=()) -> tuple[FeatureSpec, np.ndarray]:
        flat = self.frame(rows)
        spec = FeatureSpec.fit(flat.iloc[:train_count], exclude=exclude)
        return spec, spec.matrix(flat)

    def frame(self, rows: np.ndarray) -> pd.DataFrame:
        return flatten_rows(self._frame.iloc[rows])


def column_features(table: pa.Table) -> ColumnFeatures | None:
    """The candidate columns of store-layout rows; None when the `features` JSON needs the row-wise code."""
    parsed = parse_features(table.column("features")) if "features" in table.column_names else pa.table({})
    if parsed is None:
        return None
    base = table.drop_columns([c for c in ("features",) if c in table.column_names])
    keyed = [(FEATURE_PREFIX + name, parsed.column(name)) for name in parsed.column_names]
    columns = {}
    for name, values in [(c, base.column(c)) for c in base.column_names if c in CANDIDATE_COLUMNS] + keyed:
        column = _column(values)
        if column is None:
            return None
        columns[name] = column
    flat = pa.Table.from_arrays(base.columns + [values for _, values in keyed],
                                names=base.column_names + [name for name, _ in keyed])
    return ColumnFeatures(columns, flat)


def parse_features(texts: pa.ChunkedArray) -> pa.Table | None:
    """One column per key of the JSON objects (null text = no keys); None if Arrow cannot read them
    as json.loads would."""
    if len(texts) == 0:
        return pa.table({})
    objects = texts.fill_null("{}").cast(pa.large_string()).combine_chunks()
    data = pc.binary_join(pa.LargeListArray.from_arrays([0, len(objects)], objects),
                          pa.scalar("\n", pa.large_string()))[0].as_buffer()
    read = pj.ReadOptions(use_threads=False, block_size=_BLOCK_BYTES)
    try:
        parsed = pj.read_json(pa.BufferReader(data), read_options=read)
        dated = [f for f in parsed.schema if pa.types.is_timestamp(f.type) or pa.types.is_date(f.type)]
        if dated:  # Arrow turns ISO-looking strings into timestamps; json.loads keeps the text
            schema = pa.schema([(f.name, pa.string()) for f in dated])
            parsed = pj.read_json(pa.BufferReader(data), read_options=read,
                                  parse_options=pj.ParseOptions(explicit_schema=schema))
    except pa.ArrowInvalid:  # a key with mixed types, a non-object, invalid JSON, ...
        return None
    return parsed if parsed.num_rows == len(texts) else None  # a row was blank or spanned lines


def _column(values: pa.ChunkedArray) -> Column | None:
    kind = values.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return Column(NUMBER, pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False))
    if pa.types.is_boolean(kind):
        return Column(FLAG, pc.cast(values, pa.int64()).fill_null(-1).to_numpy())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
        encoded = pc.dictionary_encode(values.combine_chunks().cast(pa.string()))
        codes = encoded.indices.cast(pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False)
        return Column(TEXT, codes, tuple(encoded.dictionary.to_pylist()))
    return None  # nested or other types: the row-wise code decides
