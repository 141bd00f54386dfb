"""consumers/drift_samples.py: feature values of landed tables, the bounded history, store reads."""
from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pyarrow as pa

from consumers.drift_samples import (FIXED_FEATURES, MAX_MAP_FEATURES, PropertyHistory, iter_parts,
                                     landed_days, read_days, store_properties, table_values)
from consumers.rows import ROW_SCHEMA
from drift_helpers import DAY0, Lander, day_range
from schemas.settings import Settings


def table(**columns) -> pa.Table:
    n = len(next(iter(columns.values())))
    data = {name: columns.get(name, [None] * n) for name in ROW_SCHEMA.names}
    data["source_partition"] = columns.get("source_partition", [0] * n)
    data["source_offset"] = columns.get("source_offset", list(range(n)))
    return pa.Table.from_pydict(data, schema=ROW_SCHEMA)


def test_table_values_turn_nulls_into_nan_and_keep_numeric_map_entries():
    maps = [{"adults": 2.0, "country": "PRT", "flag": True, "babies": None}, {"adults": 1, "babies": 0.0}, None]
    values = table_values(table(quoted_price=[1.0, 2.0, 3.0], accepted=[True, False, None], lead_time=[3, None, 5],
                                features=[None if m is None else json.dumps(m) for m in maps]))
    assert set(values) == set(FIXED_FEATURES) | {"features.adults", "features.babies"}
    np.testing.assert_array_equal(values["quoted_price"], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(values["accepted"], [1.0, 0.0, np.nan])
    np.testing.assert_array_equal(values["lead_time"], [3.0, np.nan, 5.0])
    np.testing.assert_array_equal(values["features.adults"], [2.0, 1.0, np.nan])
    np.testing.assert_array_equal(values["features.babies"], [np.nan, 0.0, np.nan])
    assert np.isnan(values["comp_p50"]).all()


def test_map_features_are_capped():
    many = json.dumps({f"k{i:03d}": float(i) for i in range(MAX_MAP_FEATURES + 10)})
    values = table_values(table(quoted_price=[1.0], accepted=[True], features=[many]))
    mapped = sorted(name for name in values if name.startswith("features."))
    assert mapped == [f"features.k{i:03d}" for i in range(MAX_MAP_FEATURES)]


def test_history_adds_each_part_once_and_merges_missing_features():
    history = PropertyHistory(day_cap=100, keep_days=3)
    first = table(quoted_price=[1.0, 2.0], accepted=[True, True], features=['{"a": 1}', '{"a": 2}'])
    second = table(quoted_price=[3.0], accepted=[False], features=['{"b": 5}'], source_offset=[7])
    assert history.add(DAY0, (0, 0), first) and not history.add(DAY0, (0, 0), first)
    assert history.add(DAY0, (0, 7), second)
    window, rows = history.window(DAY0, DAY0 + timedelta(days=1))
    assert (window.rows, rows) == (3, 3)
    np.testing.assert_array_equal(window.values["quoted_price"], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(window.values["features.a"], [1.0, 2.0, np.nan])
    np.testing.assert_array_equal(window.values["features.b"], [np.nan, np.nan, 5.0])


def test_history_thins_big_days_deterministically_and_forgets_old_ones():
    big = table(quoted_price=[float(i) for i in range(500)], accepted=[True] * 500, features=[None] * 500)
    kept = []
    for _ in range(2):
        history = PropertyHistory(day_cap=120, keep_days=2)
        history.add(DAY0, (0, 0), big)
        window, rows = history.window(DAY0, DAY0 + timedelta(days=1))
        assert (window.rows, rows) == (120, 500)
        kept.append(window.values["quoted_price"])
    np.testing.assert_array_equal(kept[0], kept[1])
    assert len(set(kept[0])) == 120 and kept[0].max() > 400  # a sample of the whole day, not its head
    history.add(DAY0 + timedelta(days=2), (0, 500), big.slice(0, 10))
    assert history.window(DAY0, DAY0 + timedelta(days=1))[0].rows == 0  # outside keep_days
    assert history.newest == DAY0 + timedelta(days=2)


def test_store_reads_prune_by_property_and_day(tmp_path):
    settings = Settings.from_env({}, data_dir=str(tmp_path))
    lander = Lander(settings)
    lander.land("city", 0, day_range(0, 4), per_day=5)
    lander.land("odd/id", 1, day_range(2, 3), per_day=3)
    assert store_properties(tmp_path) == ["city", "odd/id"]
    assert landed_days(tmp_path, "city") == day_range(0, 4) and landed_days(tmp_path, "nope") == []
    rows = read_days(tmp_path, "city", DAY0 + timedelta(days=1), DAY0 + timedelta(days=3))
    assert rows.num_rows == 10 and sorted(set(rows.column("date").to_pylist())) == ["2016-06-02", "2016-06-03"]
    parts = list(iter_parts(tmp_path, "odd/id", DAY0 + timedelta(days=3)))
    assert [(day, part.num_rows) for day, part in parts] == [(DAY0 + timedelta(days=3), 3)]
