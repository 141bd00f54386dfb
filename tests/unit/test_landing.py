import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from prometheus_client import CollectorRegistry

from consumers.dedupe import Verdict
from consumers.landing import LandingSink
from consumers.paths import PartName, iter_part_files
from consumers.rows import rows_to_table
from monitoring.metrics import IngestMetrics
from schemas.settings import Settings

T0 = datetime(2016, 3, 1, tzinfo=timezone.utc)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def record(i, day=0, prop="city", price=100.0, hours=0):
    return {"event_id": f"e{i}", "property_id": prop, "timestamp": T0 + timedelta(days=day, hours=hours),
            "quoted_price": price, "accepted": i % 2 == 0, "final_price": None, "time_to_book": None,
            "comp_p10": None, "comp_p50": None, "comp_p90": None,
            "context": {"season": "Spring", "day_of_week": 1, "temperature": None, "is_holiday": None,
                        "occupancy_rate": None, "lead_time": 3, "length_of_stay": 2, "is_refundable": 0},
            "features": {"country": "PRT", "adults": 2.0}}


def make_sink(tmp_path, clock=None, **overrides):
    settings = Settings.from_env({}, data_dir=str(tmp_path), lateness_seconds=0, **overrides)
    metrics = IngestMetrics(CollectorRegistry())
    return LandingSink(settings, "outcomes", "EPOCH1", metrics, clock=clock or Clock()), metrics


def landed(tmp_path):
    return ds.dataset(Path(tmp_path) / "outcomes", format="parquet", partitioning="hive").to_table()


def value(counter):
    return counter._value.get()


def test_closed_windows_flush_and_open_window_waits(tmp_path):
    sink, metrics = make_sink(tmp_path)
    for offset, day in enumerate([0, 0, 1, 2]):
        assert sink.accept(0, offset, record(offset, day), handle=offset) is Verdict.NEW
    acked = sink.flush_due()
    assert sorted(acked) == [0, 1, 2]          # days 0 and 1 closed by the watermark at day 2
    assert sink.buffered == 1
    table = landed(tmp_path)
    assert table.num_rows == 3
    assert sorted(table.column("event_id").to_pylist()) == ["e0", "e1", "e2"]
    assert set(table.column("property_id").to_pylist()) == {"city"}
    assert value(metrics.landed) == 3 and value(metrics.files_written) == 2
    names = sorted(p.name for _, _, p, _ in iter_part_files(tmp_path))
    assert names[0] == PartName("outcomes", 0, 0, 1, "EPOCH1").filename()


def test_duplicates_conflicts_and_redelivery_after_restart(tmp_path):
    sink, metrics = make_sink(tmp_path)
    assert sink.accept(0, 10, record(1), 10) is Verdict.NEW
    assert sink.accept(0, 11, record(1), 11) is Verdict.DUPLICATE
    assert sink.accept(0, 12, record(1, price=999.0), 12) is Verdict.CONFLICT
    assert sorted(sink.flush()) == [10]
    assert value(metrics.duplicates) == 2 and value(metrics.conflicts) == 1
    # a new process resuming at offset 10 meets the landed message again
    again, metrics2 = make_sink(tmp_path)
    assert again.accept(0, 10, record(1), 10) is Verdict.REDELIVERED
    assert again.accept(0, 13, record(1), 13) is Verdict.DUPLICATE
    assert again.accept(0, 14, record(2), 14) is Verdict.NEW
    again.flush()
    assert value(metrics2.redelivered) == 1
    assert landed(tmp_path).num_rows == 2


def test_late_event_lands_in_new_part_and_is_counted(tmp_path):
    sink, metrics = make_sink(tmp_path)
    sink.accept(0, 0, record(0, day=0), 0)
    sink.accept(0, 1, record(1, day=3), 1)
    sink.flush_due()
    sink.accept(0, 2, record(2, day=0, hours=5), 2)   # its window closed long ago
    assert value(metrics.late) == 1
    assert sink.flush_due() == [2]
    day0 = [p for _, d, p, _ in iter_part_files(tmp_path) if d == "2016-03-01"]
    assert len(day0) == 2
    assert landed(tmp_path).num_rows == 2 and sink.buffered == 1  # day 3 is still open


def test_wall_clock_interval_and_size_limits(tmp_path):
    clock = Clock()
    sink, _ = make_sink(tmp_path, clock=clock, flush_interval_seconds=5.0, flush_max_events=3)
    sink.accept(0, 0, record(0), 0)
    assert sink.flush_due() == []
    clock.now += 5.0
    assert sink.flush_due() == [0]
    for i in range(1, 4):
        sink.accept(1, i, record(i, prop="resort"), i)
    assert sorted(sink.flush_due()) == [1, 2, 3]


def test_the_interval_counts_from_produce_for_live_events_and_from_read_for_a_backlog(tmp_path):
    clock = Clock()
    sink, _ = make_sink(tmp_path, clock=clock, flush_interval_seconds=5.0)
    sink.accept(0, 0, record(0), 0, produced_at=time.time() - 3.0)   # live: already waited 3 s
    clock.now += 1.9
    assert sink.flush_due() == []
    clock.now += 0.2
    assert sink.flush_due() == [0]
    sink.accept(0, 1, record(1), 1, produced_at=time.time() - 3600)  # backlog: counts from now
    clock.now += 4.9
    assert sink.flush_due() == []
    sink.accept(0, 2, record(2), 2, produced_at=time.time() - 4.0)   # a live one joins the window
    assert sink.flush_due() == []
    clock.now += 1.1
    assert sorted(sink.flush_due()) == [1, 2]


def test_a_drained_stream_lands_backlog_windows_at_once_and_live_ones_on_their_clock(tmp_path):
    clock = Clock()
    sink, _ = make_sink(tmp_path, clock=clock, flush_interval_seconds=5.0)
    old = time.time() - 3600
    sink.accept(0, 0, record(0, day=0), "backlog", produced_at=old)
    sink.accept(1, 0, record(1, day=0, prop="resort"), "live", produced_at=time.time() - 1.0)
    sink.accept(2, 0, record(2, day=0, prop="spa"), "mixed", produced_at=old)
    sink.accept(2, 1, record(3, day=0, prop="spa"), "mixed-live", produced_at=time.time())
    sink.accept(3, 0, record(4, day=0, prop="inn"), "no-timestamp")
    assert sink.flush_due() == []                     # backlog windows wait while more may come
    assert sink.flush_due(drained=True) == ["backlog"]
    assert sink.buffered == 4
    clock.now += 5.0
    assert sorted(sink.flush_due()) == ["live", "mixed", "mixed-live", "no-timestamp"]


@pytest.mark.parametrize("mode", ["syncfs", "fsync"])
def test_a_flush_makes_files_and_folders_durable_before_handing_back(tmp_path, monkeypatch, mode):
    calls = []
    monkeypatch.setattr("consumers.landing.os.fsync", lambda fd: calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))))
    monkeypatch.setattr("consumers.landing.sync_filesystem", lambda path: calls.append(("syncfs", str(path))))
    sink, _ = make_sink(tmp_path, durability=mode)
    for offset, day in enumerate([0, 1, 2]):
        sink.accept(0, offset, record(offset, day=day), offset)
    assert sorted(sink.flush()) == [0, 1, 2]
    files = sorted(str(p) for p in (tmp_path / "outcomes").rglob("*.parquet"))
    assert len(files) == 3
    if mode == "syncfs":
        assert calls == [("syncfs", str(tmp_path))] * 2
    else:
        temps = [Path(path).name for _, path in calls[:3]]   # os.fsync of each temp file, then the folders
        assert all(name.startswith(".") and name.endswith(".parquet.tmp") for name in temps)
        folders = sorted(path for _, path in calls[3:])
        days = sorted(str(Path(f).parent) for f in files)
        # the three new date folders, their property folder, outcomes/ and the data dir, once each
        assert folders == sorted(days + [str(Path(days[0]).parent), str(tmp_path / "outcomes"), str(tmp_path)])
    calls.clear()
    sink.accept(0, 3, record(3, day=2, hours=1), 3)
    sink.flush()
    assert len(calls) == 2   # syncfs twice, or the file and its folder: no folder is new


def test_hostile_property_id_stays_inside_store_and_reads_back(tmp_path):
    sink, _ = make_sink(tmp_path)
    odd = "hôtel zürich/東京=1%"
    sink.accept(0, 0, record(0, prop=odd), 0)
    sink.flush()
    files = [p for p in (tmp_path / "outcomes").rglob("*.parquet")]
    assert len(files) == 1 and files[0].parent.parent.parent == tmp_path / "outcomes"
    assert landed(tmp_path).column("property_id").to_pylist() == [odd]


def test_never_overwrites_a_landed_file(tmp_path):
    sink, metrics = make_sink(tmp_path)
    sink.accept(0, 0, record(0), 0)
    sink.flush()
    other, _ = make_sink(tmp_path)
    other._partitions.clear()
    other.accept(0, 0, record(99), 0)  # a different event claiming the same offset
    with pytest.raises(OSError, match="refusing to overwrite"):
        other.flush()
    assert landed(tmp_path).column("event_id").to_pylist() == ["e0"]
    assert other.buffered == 1  # nothing handed back, still buffered
    assert not [p for p in (tmp_path / "outcomes").rglob(".*")]  # no temp file left behind


def test_release_flushes_revoked_partition_and_forgets_state(tmp_path):
    sink, _ = make_sink(tmp_path)
    sink.accept(0, 0, record(0), "a")
    sink.accept(1, 0, record(1, prop="resort"), "b")
    assert sink.release([0]) == ["a"]
    assert sink.buffered == 1
    assert landed(tmp_path).num_rows == 1


def test_part_names_refuse_epochs_that_are_not_url_safe():
    assert PartName.parse(PartName("t", 1, 2, 3, "Ab-_9").filename()) == PartName("t", 1, 2, 3, "Ab-_9")
    with pytest.raises(ValueError):
        PartName("t", 1, 2, 3, "Ab/c+d").filename()


def test_resume_removes_temp_files_of_an_interrupted_flush(tmp_path):
    sink, _ = make_sink(tmp_path)
    sink.accept(0, 0, record(0), 0)
    key = next(iter(sink._windows))
    table = rows_to_table(sink._windows[key].rows, 0, sink._windows[key].offsets)
    tmp, final = sink._write_temp(key, sink._windows[key], table)   # crash before the link
    assert tmp.exists() and not final.exists()
    again, _ = make_sink(tmp_path)
    assert again.accept(0, 0, record(0), 0) is Verdict.NEW   # nothing landed, so not a redelivery
    assert not tmp.exists()
    again.flush()
    assert landed(tmp_path).column("event_id").to_pylist() == ["e0"]


def test_resume_rebuilds_the_horizon_of_the_resume_point_not_of_the_newest_file(tmp_path):
    # the committed offset lags the landed files: a crash after offset 10 landed, resume at 3
    sink, _ = make_sink(tmp_path)
    for offset in range(11):
        sink.accept(0, offset, record(offset, day=offset), offset)
    sink.flush()
    again, metrics = make_sink(tmp_path)
    assert again.accept(0, 3, record(3, day=3), 3) is Verdict.REDELIVERED
    # a producer re-send of an event from just before the resume point is still recognised
    assert again.accept(0, 11, record(2, day=2), 11) is Verdict.DUPLICATE
    assert again.accept(0, 12, record(12, day=11), 12) is Verdict.NEW
    assert value(metrics.redelivered) == 1 and value(metrics.duplicates) == 1
