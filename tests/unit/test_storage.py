"""OutcomesStorage over a hand-built store: stats, queries, export, listing, retention."""
import os
import random
from datetime import date, datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from store_helpers import land, row, settled

from consumers import storage as storage_module
from consumers.paths import PartName, partition_dir
from consumers.storage import COMP_FIELDS, STATS_COLUMNS, OutcomesStorage, UnknownProperty, as_of_instant, parse_as_of
from consumers.store_stats import chunk_sums, summed_mean
from consumers.rows import CONTEXT_FIELDS
from consumers.store_scan import SummaryCache, retry_vanished


@pytest.fixture(params=["fresh", "settled"])
def store(tmp_path, request):
    """The store read with its files just landed (nothing cached) and as if they had settled (the
    part-file summaries are kept, and later calls use them)."""
    land(tmp_path, "city", 0, [row("a", 0, True, 100.0, 100.0, comp=True), row("b", 0, False, 200.0)], first=0)
    land(tmp_path, "city", 0, [row("c", 0, True, 300.0, 280.0, context=False)], first=2)
    land(tmp_path, "city", 5, [row("d", 5, False, 400.0, comp=True), row("a", 5, True, 100.0)], first=3)
    land(tmp_path, "hôtel/ü 1", 1, [row("x", 1)], partition=1)
    storage = OutcomesStorage(tmp_path)
    return settled(storage) if request.param == "settled" else storage


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
    # [Aug 1 12:00:00.001, Aug 8 12:00:00.001): day 0's rows (12:00 sharp) fall out by a millisecond
    edge = store.get_statistics("city", as_of=parse_as_of("2017-08-08T12:00:00.001+00:00"))
    assert edge["recent_activity"] == {"last_7_days": 2, "acceptance_rate_7d": 0.5}
    assert store.get_statistics("city")["recent_activity"] == {"last_7_days": 0, "acceptance_rate_7d": None}
    assert store.get_statistics("city", as_of=date(2017, 8, 6))["recent_activity"]["last_7_days"] == 5


def random_day(rng, day, first):
    """Rows of one part file: prices with many digits, nulls in every nullable column, any hour."""
    comp_share, context_share = rng.choice([0.0, 0.5, 1.0]), rng.choice([0.0, 0.5, 1.0])
    return [row(f"e{first + i}", day, rng.random() < 0.6, rng.uniform(20, 900),
                rng.choice([None, rng.uniform(20, 900)]), comp=rng.random() < comp_share,
                context=rng.random() < context_share, hour=rng.randrange(24))
            for i in range(rng.randint(1, 60))]


def seed_statistics(data_dir, property_id, as_of):
    """What get_statistics computed before it summarised part files: the seed's figures over all
    the property's rows, concatenated in landing order (one chunk per file and row group)."""
    files = sorted((partition_dir(data_dir, property_id, date(2017, 7, 1)).parent).glob("date=*/*.parquet"))
    table = pa.concat_tables([pq.ParquetFile(path).read(columns=STATS_COLUMNS) for path in files])
    end = as_of_instant(as_of)
    stamps = table.column("timestamp")
    inside = pc.and_(pc.greater_equal(stamps, pa.scalar(end - timedelta(days=7), stamps.type)),
                     pc.less(stamps, pa.scalar(end, stamps.type)))
    recent = table.column("accepted").filter(inside)

    def rate(accepted):
        return None if len(accepted) == 0 else round(pc.mean(accepted.cast(pa.float64())).as_py(), 4)

    def iso(scalar):
        text = scalar.as_py().astimezone(timezone.utc).isoformat(timespec="milliseconds")
        return text.replace(".000+00:00", "Z").replace("+00:00", "Z")

    def any_null(names, combine):
        mask = pc.is_null(table.column(names[0]))
        for name in names[1:]:
            mask = combine(mask, pc.is_null(table.column(name)))
        return pc.sum(mask).as_py() or 0

    low, high = pc.min_max(stamps).values()
    return {
        "exists": True, "total_records": table.num_rows, "date_range": {"min": iso(low), "max": iso(high)},
        "acceptance_rate": rate(table.column("accepted")),
        "avg_quoted_price": round(pc.mean(table.column("quoted_price")).as_py(), 2),
        "avg_final_price": round(pc.mean(table.column("final_price")).as_py(), 2),
        "file_size_mb": round(sum(os.path.getsize(path) for path in files) / 2**20, 2),
        "data_quality": {"missing_final_price": table.column("final_price").null_count,
                         "missing_comp_bands": any_null(COMP_FIELDS, pc.or_),
                         "missing_context": any_null(CONTEXT_FIELDS, pc.and_)},
        "recent_activity": {"last_7_days": len(recent), "acceptance_rate_7d": rate(recent)},
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_statistics_from_file_summaries_are_those_over_all_rows(tmp_path, seed):
    rng, offset = random.Random(seed), 0
    for day in range(12):
        for _ in range(rng.randint(1, 3)):
            rows = random_day(rng, day, offset)
            land(tmp_path, "city", day, rows, first=offset, row_group_size=rng.choice([None, 7]))
            offset += len(rows)
    storage = settled(OutcomesStorage(tmp_path))
    moments = [None, date(2017, 8, 6), parse_as_of("2017-08-10T07:30:00+00:00"),
               parse_as_of("2017-08-09T19:45:12.345+02:00"), parse_as_of("2017-08-10T15:00:00+00:00"), date(2017, 8, 6)]
    for as_of in moments:   # cutting through days (twice through the same ones), again once summaries are kept
        assert storage.get_statistics("city", as_of=as_of) == seed_statistics(tmp_path, "city", as_of)


def test_summed_chunk_sums_are_pc_mean_to_the_last_bit():
    rng = random.Random(5)
    for _ in range(300):
        chunks = [pa.array([None if rng.random() < 0.2 else rng.uniform(0, 1000) * rng.choice([1e-3, 1, 1e6])
                            for _ in range(rng.randint(0, 200))], pa.float64()) for _ in range(rng.randint(1, 30))]
        column = pa.chunked_array(chunks, pa.float64())
        assert summed_mean(list(chunk_sums(column)), len(column) - column.null_count) == pc.mean(column).as_py()


def test_a_second_call_reads_only_new_or_replaced_files(store, tmp_path, monkeypatch):
    settled(store)
    first = store.get_statistics("city", as_of=date(2017, 8, 6))
    read = []
    summarise_file = storage_module.summarise_file

    def counted(parquet, window):
        read.append(parquet.metadata.num_rows)
        return summarise_file(parquet, window)

    monkeypatch.setattr(storage_module, "summarise_file", counted)
    assert store.get_statistics("city", as_of=date(2017, 8, 6)) == first and read == []
    land(tmp_path, "city", 5, [row("e", 5, False, 500.0)], first=9)   # the worker lands one more file
    assert store.get_statistics("city", as_of=date(2017, 8, 6))["avg_quoted_price"] == 266.67 and read == [1]
    # a replay rewrites a part file under its name (temp file, rename): that file is read again
    replay = land(tmp_path / "replay", "city", 0, [row("c", 0, True, 30.0)], first=2)
    os.replace(replay, partition_dir(tmp_path, "city", date(2017, 8, 1)) / replay.name)
    assert store.get_statistics("city", as_of=date(2017, 8, 6))["avg_quoted_price"] == 221.67 and read == [1, 1]


def test_files_landed_just_now_are_read_on_every_call(tmp_path):
    """A file may be rewritten in place within one tick of the file clock, keeping its size and
    timestamps: its summary is only kept once it is older than the cache's settling time."""
    path = land(tmp_path, "city", 0, [row("a", 0, price=100.0), row("b", 0, price=200.0)])
    storage = OutcomesStorage(tmp_path)
    assert storage.get_statistics("city")["avg_quoted_price"] == 150.0 and len(storage._file_stats) == 0
    pq.write_table(pq.read_table(path).set_column(2, "quoted_price", pa.array([300.0, 400.0])), path)
    assert storage.get_statistics("city")["avg_quoted_price"] == 350.0


def test_the_summary_cache_is_bounded_and_keeps_the_recently_used():
    cache = SummaryCache(max_files=2, settle_ns=10, clock=lambda: 100)
    cache.put((0, 1, 0, 0, 50), "one", started_ns=100)
    cache.put((0, 2, 0, 0, 50), "two", started_ns=100)
    assert cache.get((0, 1, 0, 0, 50)) == "one"
    cache.put((0, 3, 0, 0, 50), "three", started_ns=100)
    cache.put((0, 4, 0, 0, 95), "young", started_ns=100)   # ctime within the settling time: not kept
    assert [cache.get((0, ino, 0, 0, 50)) for ino in (1, 2, 3)] == ["one", None, "three"]
    assert len(cache) == 2 and cache.get((0, 4, 0, 0, 95)) is None


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
