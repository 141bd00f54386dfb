"""batch/retrain_features.py must give the spec and matrix of consumers.model_features (which the
follower predicts with), or hand the rows to that code."""
import json

import numpy as np
import pyarrow as pa
import pytest

from batch.retrain_features import ColumnFeatures, RowFeatures, column_features, parse_features
from consumers.rows import ROW_SCHEMA

N = 400


def store_table(features: list, **columns) -> pa.Table:
    """N store-layout rows: every other one accepted, some context missing, `features` as given."""
    rng = np.random.default_rng(3)
    values = {
        "event_id": [f"e{i}" for i in range(N)], "timestamp": list(range(N)),
        "quoted_price": [float(p) for p in rng.uniform(50, 150, N)], "accepted": [i % 2 == 0 for i in range(N)],
        "final_price": [None] * N, "time_to_book": [None] * N, "comp_p10": [None] * N,
        "comp_p50": [None if i % 3 else 100.0 + i for i in range(N)], "comp_p90": [None] * N,
        "season": [None if i % 7 == 0 else ["Winter", "Summer", "Fall"][i % 3] for i in range(N)],
        "day_of_week": [i % 7 for i in range(N)], "temperature": [None] * N, "is_holiday": [None] * N,
        "occupancy_rate": [0.5] * N, "lead_time": [None if i % 5 == 0 else i for i in range(N)],
        "length_of_stay": [2] * N, "is_refundable": [i % 2 for i in range(N)],
        "features": [None if f is None else f if isinstance(f, str) else json.dumps(f) for f in features],
        "source_partition": [0] * N, "source_offset": list(range(N)), **columns,
    }
    return pa.Table.from_pydict(values, schema=ROW_SCHEMA)


def varied_features() -> list:
    rows = []
    for i in range(N):
        row = {"adults": float(i % 4), "nights": i % 9, "agent": None if i % 4 == 0 else str(i % 13),
               "repeat": i % 3 == 0, "vip": None if i % 10 == 0 else i % 5 == 0,
               "arrival": f"2017-08-{1 + i % 28:02d}", "company": None}
        if i % 2:
            row["rejected_only"] = float(i)    # never set on an accepted row (adr rows)
        if i == 7:
            row["rare"] = "x"                  # set on < 1 % of the rows
        rows.append(None if i % 50 == 3 else row)
    return rows


def assert_same(table: pa.Table, rows: np.ndarray, train_count: int, exclude=()):
    fast = column_features(table)
    assert isinstance(fast, ColumnFeatures)
    spec, matrix = fast.fit_matrix(rows, train_count, exclude)
    expected_spec, expected = RowFeatures(table).fit_matrix(rows, train_count, exclude)
    assert spec == expected_spec
    np.testing.assert_array_equal(matrix, expected)
    return spec, matrix


@pytest.mark.parametrize("model_rows", ["all", "accepted", "newest"])
def test_column_features_equal_the_row_wise_code(model_rows):
    table = store_table(varied_features())
    rows = {"all": np.arange(N), "accepted": np.arange(0, N, 2), "newest": np.arange(N // 2, N)}[model_rows]
    spec, _ = assert_same(table, rows, int(len(rows) * 0.8), exclude=("quoted_price",))
    kinds = {f.name: f.categories for f in spec.features}
    assert "quoted_price" not in kinds and "features.rare" not in kinds and "features.company" not in kinds
    assert kinds["features.adults"] is None and kinds["features.nights"] is None
    assert kinds["features.vip"] is not None  # a boolean missing on some model row is text, like in pandas
    assert kinds["features.repeat"] == (None if model_rows == "accepted" else ("False", "True"))  # null features
    assert kinds["features.arrival"][0] == "2017-08-01"  # a date-like string stays text
    assert kinds["season"] == ("Fall", "Summer", "Winter")
    assert ("features.rejected_only" in kinds) == (model_rows != "accepted")


def test_categories_come_from_the_training_rows_only():
    features = [{"channel": "direct" if i < 300 else "new-channel"} for i in range(N)]
    spec, matrix = assert_same(store_table(features), np.arange(N), 300)
    [channel] = [f for f in spec.features if f.name == "features.channel"]
    assert channel.categories == ("direct",)
    column = spec.names.index("features.channel")
    assert (matrix[:300, column] == 0).all() and np.isnan(matrix[300:, column]).all()


@pytest.mark.parametrize("features", [
    [{"x": 1.0}] * (N - 1) + [{"x": "text"}],   # numbers and text under one key
    [{"x": {"nested": 1}}] * N,                 # nested value
    [{"x": 1.0}] * (N - 1) + [""],              # not JSON
    [{"x": 1.0}] * (N - 1) + ["[1, 2]"],        # not an object
])
def test_json_arrow_cannot_read_like_json_loads_goes_to_the_row_wise_code(features):
    assert column_features(store_table(features)) is None


def test_booleans_set_on_every_model_row_are_numbers_and_objects_may_span_lines():
    features = [{"flag": i % 3 == 0, "n": 1.0} for i in range(N - 1)] + ['{\n  "flag": true,\n  "n": 2.0\n}']
    spec, matrix = assert_same(store_table(features), np.arange(N), 300)
    assert {f.name: f.categories for f in spec.features}["features.flag"] is None
    assert matrix[-1, spec.names.index("features.n")] == 2.0
    assert list(matrix[:4, spec.names.index("features.flag")]) == [1.0, 0.0, 0.0, 1.0]


def test_mixed_keys_still_train_row_wise():
    table = store_table([{"x": 1.0 if i % 2 else "a", "y": i % 3 == 0} for i in range(N)])
    assert column_features(table) is None
    spec, matrix = RowFeatures(table).fit_matrix(np.arange(N), 300)
    [x] = [f for f in spec.features if f.name == "features.x"]
    assert x.categories == ("1.0", "a") and matrix.shape == (N, len(spec.features))


def test_parse_features_reads_null_as_no_keys():
    parsed = parse_features(pa.chunked_array([['{"a": 1}', None, '{"b": "2017-01-01"}']]))
    assert parsed.to_pydict() == {"a": [1, None, None], "b": [None, None, "2017-01-01"]}
    assert parse_features(pa.chunked_array([[None, None]], pa.string())).num_rows == 2


def test_frame_has_the_flattened_rows():
    table = store_table(varied_features())
    frame = column_features(table).frame(np.array([1, 2]))
    assert list(frame["event_id"]) == ["e1", "e2"] and list(frame["features.adults"]) == [1.0, 2.0]
    assert "features" not in frame.columns
