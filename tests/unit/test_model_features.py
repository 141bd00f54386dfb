import json
import math

import numpy as np
import pandas as pd

from consumers.model_features import FeatureSpec, flatten_rows


def store_frame():
    return pd.DataFrame({
        "event_id": ["a", "b", "c", "d"],
        "quoted_price": [100.0, 120.0, 90.0, 110.0],
        "accepted": [True, False, True, False],
        "final_price": [100.0, None, 90.0, None],
        "time_to_book": [5.0, None, 3.0, None],
        "season": ["Summer", "Winter", "Summer", None],
        "lead_time": [3, 40, 7, 12],
        "features": [json.dumps({"country": "PRT", "adults": 2.0, "agent": "9"}),
                     json.dumps({"country": "GBR", "adults": 1.0, "agent": None}),
                     json.dumps({"country": "PRT", "adults": 2.0}),
                     None],
    })


def test_fit_keeps_candidates_and_never_outcome_columns():
    spec = FeatureSpec.fit(flatten_rows(store_frame()))
    assert spec.names == ["features.adults", "features.agent", "features.country", "lead_time",
                          "quoted_price", "season"]
    by_name = {f.name: f.categories for f in spec.features}
    assert by_name["features.country"] == ("GBR", "PRT")
    assert by_name["season"] == ("Summer", "Winter")
    assert by_name["features.agent"] == ("9",)
    assert by_name["lead_time"] is None


def test_exclusions_and_coverage():
    frame = flatten_rows(store_frame())
    frame["features.rare"] = [None] * 4
    spec = FeatureSpec.fit(frame, exclude=["quoted_price"])
    assert "quoted_price" not in spec.names and "features.rare" not in spec.names


def test_matrix_codes_unknown_and_missing_as_nan():
    spec = FeatureSpec.fit(flatten_rows(store_frame()))
    rows = [{"quoted_price": 99.0, "lead_time": 5, "season": "Spring",
             "features": {"country": "PRT", "adults": 3.0, "agent": 9}}]
    matrix = spec.matrix(flatten_rows(rows))
    values = dict(zip(spec.names, matrix[0]))
    assert values["features.country"] == 1.0  # index of PRT in (GBR, PRT)
    assert math.isnan(values["season"])  # Spring was never seen in training
    assert values["features.agent"] == 0.0  # categories compare as text: 9 is "9"
    assert values["features.adults"] == 3.0 and values["quoted_price"] == 99.0


def test_avro_shaped_records_give_the_same_matrix_as_store_rows():
    spec = FeatureSpec.fit(flatten_rows(store_frame()))
    store_rows = store_frame().to_dict("records")
    avro = [{"quoted_price": r["quoted_price"], "context": {"season": r["season"], "lead_time": r["lead_time"]},
             "features": json.loads(r["features"]) if isinstance(r["features"], str) else None} for r in store_rows]
    np.testing.assert_array_equal(spec.matrix(flatten_rows(store_frame())), spec.matrix(flatten_rows(avro)))


def test_spec_round_trips_through_json():
    spec = FeatureSpec.fit(flatten_rows(store_frame()))
    again = FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    frame = flatten_rows(store_frame())
    np.testing.assert_array_equal(again.matrix(frame), spec.matrix(frame))


def test_missing_column_at_prediction_is_nan():
    spec = FeatureSpec.fit(flatten_rows(store_frame()))
    matrix = spec.matrix(flatten_rows([{"quoted_price": 1.0}]))
    assert np.isnan(matrix[0]).sum() == len(spec.names) - 1
