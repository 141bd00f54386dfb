"""OutcomesStorage over a hand-built store: stats, queries, export, listing, retention."""
from datetime import date, datetime, timezone

import pyarrow.parquet as pq
import pytest
from store_helpers import land, row

from consumers.paths import PartName, partition_dir
from consumers.storage import OutcomesStorage, UnknownProperty, as_of_instant, parse_as_of
from consumers.store_scan import retry_vanished


@pytest.fixture
def store(tmp_path):
    land(tmp_path, "city", 0, [row("a", 0, True, 100.0, 100.0, comp=True), row("b", 0, False, 200.0)], first=0)
    land(tmp_path, "city", 0, [row("c", 0, True, 300.0, 280.0, context=False)], first=2)
    land(tmp_path, "city", 5, [row("d", 5, False, 400.0, comp=True), row("a", 5, True, 100.0)], first=3)
    land(tmp_path, "hôtel/ü 1", 1, [row("x", 1)], partition=1)
    return OutcomesStorage(tmp_path)


def test_statistics_follow_the_seed_shape(store):
    stats = store.get_statistics("city", as_of=date(2017, 8, 6))
    assert stats["exists"] is True and stats["total_records"] == 5
    assert stats["date_range"] == {"min": "2017-08-01T12:00:00Z", "max": "2017-08-06T12:00:00Z"}
    assert stats["acceptance_rate"] == 0.6
    assert stats["avg_quoted_price"] == 220.0
    assert stats["avg_final_price"] == 190.0
    assert stats["data_quality"] == {"missing_final_price": 3, "missing_comp_bands": 3, "missing_context": 1}
    assert stats["file_size_mb"] > 0


def test_recent_activity_is_relative_to_as_of(store):
    # through the end of Aug 6: the 7 days Jul 31 .. Aug 6 hold all five rows
    assert store.get_statistics("city", as_of=date(2017, 8, 6))["recent_activity"] == {
        "last_7_days": 5, "acceptance_rate_7d": 0.6}
    # an instant: [Aug 1 13:00, Aug 8 13:00) holds only day 5's rows
    late = store.get_statistics("city", as_of=parse_as_of("2017-08-08T13:00:00+00:00"))
    assert late["recent_activity"] == {"last_7_days": 2, "acceptance_rate_7d": 0.5}
    assert store.get_statistics("city")["recent_activity"] == {"last_7_days": 0, "acceptance_rate_7d": None}


def test_unknown_property_does_not_exist(store):
    assert store.get_statistics("nowhere") == {"exists": False, "total_records": 0}
    assert store.get_outcomes("nowhere").empty
    with pytest.raises(UnknownProperty):
        store.export_for_training("nowhere")


def test_list_properties_decodes_the_folder_names(store, tmp_path):
    (tmp_path / "outcomes" / "property_id=empty").mkdir()
    assert store.list_properties() == ["city", "hôtel/ü 1"]
    assert store.get_statistics("hôtel/ü 1")["total_records"] == 1


def test_get_outcomes_filters_dates_inclusively_and_limits(store):
    frame = store.get_outcomes("city", start_date=date(2017, 8, 1), end_date=date(2017, 8, 1))
    assert list(frame.event_id) == ["a", "b", "c"]
    assert set(frame.property_id) == {"city"}
    assert list(store.get_outcomes("city", limit=2).event_id) == ["a", "b"]
    assert list(store.get_outcomes("city", start_date=date(2017, 8, 2)).event_id) == ["d", "a"]


def test_date_filter_never_opens_other_partitions(store, tmp_path):
    broken = partition_dir(tmp_path, "city", date(2017, 7, 1))
    broken.mkdir(parents=True)
    (broken / PartName("outcomes", 0, 90, 90, "E1").filename()).write_bytes(b"not parquet")
    assert len(store.get_outcomes("city", start_date=date(2017, 8, 1))) == 5


def test_export_keeps_the_first_row_per_event_id(store, tmp_path):
    path = store.export_for_training("city", output=tmp_path / "out" / "city.parquet")
    table = pq.read_table(path)
    assert sorted(table.column("event_id").to_pylist()) == ["a", "b", "c", "d"]
    first_a = [r for r in table.to_pylist() if r["event_id"] == "a"][0]
    assert first_a["property_id"] == "city" and first_a["source_offset"] == 0
    since = store.export_for_training("city", start_date=date(2017, 8, 3))
    assert since.parent == tmp_path / "training" / "city"
    assert pq.read_table(since).column("event_id").to_pylist() == ["d", "a"]


def test_delete_outcomes_removes_whole_partitions_before_the_date(store, tmp_path):
    removed = store.delete_outcomes("city", date(2017, 8, 6))
    assert removed == {"partitions": 1, "rows": 3}
    assert list(store.get_outcomes("city").event_id) == ["d", "a"]
    assert store.delete_outcomes(None, date(2017, 8, 7)) == {"partitions": 2, "rows": 3}
    assert store.list_properties() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outcomes"]  # no trash left behind


def test_reads_retry_when_a_file_vanishes():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise FileNotFoundError("gone")
        return "ok"

    assert retry_vanished(flaky) == "ok"
    with pytest.raises(FileNotFoundError):
        retry_vanished(lambda: (_ for _ in ()).throw(FileNotFoundError("always")))


@pytest.mark.parametrize("text", ["2017-13-01", "2017-08-01T00:00:00", "yesterday"])
def test_as_of_needs_a_date_or_an_aware_time(text):
    with pytest.raises(ValueError):
        parse_as_of(text)


def test_as_of_date_means_the_end_of_that_day():
    assert as_of_instant(date(2017, 8, 6)) == datetime(2017, 8, 7, tzinfo=timezone.utc)
