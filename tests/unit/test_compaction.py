"""Compaction: which partitions, what the merged file holds, atomicity, recovery, worker compatibility."""
import fcntl
import os
import shutil
import threading
from collections import Counter
from datetime import date, timedelta

import pytest
from prometheus_client import CollectorRegistry
from store_helpers import DAY0, land, row, settled

from consumers import compaction, store_scan
from consumers.compaction import CompactionError, CompactionPolicy, compact_store, recover
from consumers.landing import LandingSink
from consumers.paths import PartName, iter_part_files, partition_dir
from consumers.storage import OutcomesStorage
from monitoring.metrics import IngestMetrics
from schemas.settings import Settings

POLICY = CompactionPolicy(horizon_days=7, min_files=2, min_age_seconds=0)


def day_files(data_dir, prop, day):
    folder = partition_dir(data_dir, prop, (DAY0 + timedelta(days=day)).date())
    return sorted(p.name for p in folder.iterdir())


def old_day_with_three_files(tmp_path, prop="city", day=0, tag=""):
    """Three part files holding a, b, c, d (and `a` twice) on `day`; day 100 makes it old."""
    land(tmp_path, prop, day, [row("a" + tag, day), row("b" + tag, day)], first=10)
    land(tmp_path, prop, day, [row("c" + tag, day)], first=12)
    land(tmp_path, prop, day, [row("a" + tag, day), row("d" + tag, day, accepted=False)], first=30)
    land(tmp_path, prop, 100, [row("z", 100)], first=40)


def test_old_partition_becomes_one_deduplicated_part_file(tmp_path):
    old_day_with_three_files(tmp_path)
    report = compact_store(tmp_path, POLICY)
    assert report.as_dict() == {"files_before": 4, "files_after": 2, "partitions_compacted": 1,
                                "rows_before": 5, "rows_after": 4}
    assert day_files(tmp_path, "city", 0) == [PartName("outcomes", 0, 10, 31, "E1").filename()]
    frame = OutcomesStorage(tmp_path).get_outcomes("city", end_date=date(2017, 8, 1))
    assert sorted(frame.event_id) == ["a", "b", "c", "d"]
    assert dict(zip(frame.event_id, frame.source_offset))["a"] == 10  # the first landed wins
    assert day_files(tmp_path, "city", 100) == [PartName("outcomes", 0, 40, 40, "E1").filename()]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".compaction.lock", "outcomes"]  # no work folders left


def test_one_compaction_at_a_time(tmp_path):
    old_day_with_three_files(tmp_path)
    with open(tmp_path / ".compaction.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(CompactionError, match="another compaction"):
            compact_store(tmp_path, POLICY)
    assert compact_store(tmp_path, POLICY).partitions_compacted == 1


def test_running_twice_changes_nothing(tmp_path):
    old_day_with_three_files(tmp_path)
    compact_store(tmp_path, POLICY)
    before = {p: p.stat().st_mtime_ns for _, _, p, _ in iter_part_files(tmp_path)}
    assert compact_store(tmp_path, POLICY).partitions_compacted == 0
    assert {p: p.stat().st_mtime_ns for _, _, p, _ in iter_part_files(tmp_path)} == before


@pytest.mark.parametrize("newest, compacted", [(8, False), (9, True)])
def test_dates_within_horizon_plus_one_day_stay(tmp_path, newest, compacted):
    land(tmp_path, "city", 0, [row("a", 0)], first=0)
    land(tmp_path, "city", 0, [row("b", 0)], first=1)
    land(tmp_path, "city", newest, [row("z", newest)], first=2)
    assert compact_store(tmp_path, POLICY).partitions_compacted == int(compacted)


def test_horizon_of_every_kafka_partition_counts(tmp_path):
    """The worker rebuilds per Kafka partition: partition 1's newest day is day 1, so day 0 stays."""
    land(tmp_path, "city", 0, [row("a", 0)], partition=1, first=0)
    land(tmp_path, "city", 0, [row("b", 0)], partition=1, first=1)
    land(tmp_path, "resort", 1, [row("r", 1)], partition=1, first=2)
    land(tmp_path, "city", 20, [row("z", 20)], partition=0, first=0)
    assert compact_store(tmp_path, POLICY).partitions_compacted == 0


def test_min_files_min_age_and_property_filter(tmp_path):
    old_day_with_three_files(tmp_path, "city")
    old_day_with_three_files(tmp_path, "resort")
    assert compact_store(tmp_path, CompactionPolicy(7, min_files=4, min_age_seconds=0)).partitions_compacted == 0
    assert compact_store(tmp_path, CompactionPolicy(7, min_files=2, min_age_seconds=3600)).partitions_compacted == 0
    report = compact_store(tmp_path, POLICY, property_id="resort")
    assert (report.partitions_compacted, report.files_before, report.files_after) == (1, 4, 2)
    assert len(day_files(tmp_path, "city", 0)) == 3


def test_one_file_per_kafka_partition_and_dedupe_across_them(tmp_path):
    land(tmp_path, "city", 0, [row("a", 0)], partition=0, first=0)
    land(tmp_path, "city", 0, [row("b", 0)], partition=0, first=5)
    land(tmp_path, "city", 0, [row("a", 0), row("c", 0)], partition=1, first=7)
    land(tmp_path, "city", 20, [row("z", 20)], partition=0, first=9)
    land(tmp_path, "city", 20, [row("y", 20)], partition=1, first=9)
    compact_store(tmp_path, POLICY)
    names = day_files(tmp_path, "city", 0)
    assert names == [PartName("outcomes", 0, 0, 5, "E1").filename(), PartName("outcomes", 1, 7, 8, "E1").filename()]
    assert sorted(OutcomesStorage(tmp_path).get_outcomes("city", end_date=date(2017, 8, 1)).event_id) == ["a", "b", "c"]
    assert compact_store(tmp_path, POLICY).partitions_compacted == 0  # one file per Kafka partition is done


def test_part_files_landed_during_the_merge_are_kept(tmp_path, monkeypatch):
    old_day_with_three_files(tmp_path)
    merge = compaction.merge_sources

    def merge_while_the_worker_lands(sources):
        land(tmp_path, "city", 0, [row("late", 0)], first=50)  # the worker writes into the old folder
        return merge(sources)

    monkeypatch.setattr(compaction, "merge_sources", merge_while_the_worker_lands)
    compact_store(tmp_path, POLICY)
    assert day_files(tmp_path, "city", 0) == [PartName("outcomes", 0, 10, 31, "E1").filename(),
                                              PartName("outcomes", 0, 50, 50, "E1").filename()]
    assert sorted(OutcomesStorage(tmp_path).get_outcomes("city", end_date=date(2017, 8, 1)).event_id) == [
        "a", "b", "c", "d", "late"]


def test_interrupted_before_the_swap_is_undone(tmp_path, monkeypatch):
    old_day_with_three_files(tmp_path)
    names = day_files(tmp_path, "city", 0)

    def crash(a, b):
        raise KeyboardInterrupt

    monkeypatch.setattr(compaction, "exchange_dirs", crash)
    with pytest.raises(KeyboardInterrupt):
        compact_store(tmp_path, POLICY)
    monkeypatch.undo()
    recover(tmp_path)
    assert day_files(tmp_path, "city", 0) == names  # the hidden manifest is gone too
    assert not (tmp_path / compaction.STAGING / "property_id=city" / "date=2017-08-01").exists()


def test_interrupted_after_the_swap_is_completed(tmp_path, monkeypatch):
    old_day_with_three_files(tmp_path)
    exchange = compaction.exchange_dirs

    def swap_then_crash(a, b):
        land(tmp_path, "city", 0, [row("late", 0)], first=50)  # the worker lands just before the swap
        exchange(a, b)
        raise KeyboardInterrupt

    monkeypatch.setattr(compaction, "exchange_dirs", swap_then_crash)
    with pytest.raises(KeyboardInterrupt):
        compact_store(tmp_path, POLICY)
    assert day_files(tmp_path, "city", 0) == [PartName("outcomes", 0, 10, 31, "E1").filename()]
    recover(tmp_path)
    assert day_files(tmp_path, "city", 0) == [PartName("outcomes", 0, 10, 31, "E1").filename(),
                                              PartName("outcomes", 0, 50, 50, "E1").filename()]
    assert not (tmp_path / compaction.STAGING / "property_id=city" / "date=2017-08-01").exists()


def test_readers_see_the_old_files_or_the_new_one_never_both_or_neither(tmp_path):
    days = range(40)
    for day in days:
        old_day_with_three_files(tmp_path, day=day, tag=str(day))
    storage = OutcomesStorage(tmp_path)
    seen: Counter = Counter()
    stop = threading.Event()

    def read():
        try:
            while not stop.is_set():
                frame = storage.get_outcomes("city", end_date=date(2017, 9, 9))
                per_day = frame.groupby(frame.timestamp.dt.date).event_id.agg(["size", "nunique"])
                seen[len(per_day)] += 1
                seen.update(zip(per_day["size"], per_day["nunique"]))
        except Exception as exc:  # surfaces in the assertion below
            seen[repr(exc)] += 1

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        assert compact_store(tmp_path, POLICY).partitions_compacted == len(days)
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    # every read saw all 40 days, each as the old files (5 rows, 4 ids) or the merged one (4, 4)
    assert set(seen) == {len(days), (5, 4), (4, 4)}


@pytest.mark.parametrize("read", ["outcomes", "statistics"])
def test_a_listing_finished_after_the_swap_and_the_deletion_is_not_trusted(tmp_path, monkeypatch, read):
    """The interleaving behind a once-seen missing day: the reader opens the date folder, the
    compaction swaps it out and deletes it, and only then does the reader's listing run."""
    old_day_with_three_files(tmp_path)
    folder = partition_dir(tmp_path, "city", DAY0.date())
    real_scandir = store_scan.os.scandir
    raced = []

    def scandir_racing_a_compaction(target):
        if not raced:
            raced.append(target)
            held = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)  # the reader's handle on the old folder
            compact_store(tmp_path, POLICY)
            try:
                return real_scandir(held)  # lists the swapped-out, deleted folder
            finally:
                os.close(held)
        return real_scandir(target)

    monkeypatch.setattr(store_scan.os, "scandir", scandir_racing_a_compaction)
    if read == "outcomes":
        frame = OutcomesStorage(tmp_path).get_outcomes("city", end_date=DAY0.date())
        assert raced and sorted(frame.event_id) == ["a", "b", "c", "d"]
    else:   # day 0 merged (a, b, c, d: 3 accepted) and day 100 (z)
        stats = OutcomesStorage(tmp_path).get_statistics("city")
        assert raced and (stats["total_records"], stats["acceptance_rate"]) == (5, 0.8)


def test_statistics_kept_per_file_follow_compaction_and_retention(tmp_path):
    old_day_with_three_files(tmp_path)
    storage = settled(OutcomesStorage(tmp_path))
    assert storage.get_statistics("city")["total_records"] == 6
    assert storage.get_statistics("city")["total_records"] == 6   # from the kept summaries
    compact_store(tmp_path, POLICY)
    assert storage.get_statistics("city")["total_records"] == 5   # the merged file: `a` once
    storage.delete_outcomes("city", date(2017, 8, 2))
    stats = storage.get_statistics("city")
    assert (stats["total_records"], stats["date_range"]["min"]) == (1, "2017-11-09T12:00:00Z")


def make_sink(tmp_path):
    settings = Settings.from_env({}, data_dir=str(tmp_path), lateness_seconds=0, dedupe_horizon_days=7)
    return LandingSink(settings, "outcomes", "E1", IngestMetrics(CollectorRegistry()))


def record(event_id, day, price=100.0):
    return {"event_id": event_id, "property_id": "city", "timestamp": DAY0 + timedelta(days=day, hours=1),
            "quoted_price": price, "accepted": True, "final_price": None, "time_to_book": None,
            "comp_p10": None, "comp_p50": None, "comp_p90": None, "context": None, "features": None}


def test_the_worker_rebuilds_the_same_dedupe_state_after_compaction(tmp_path):
    sink = make_sink(tmp_path / "a")
    for offset in range(6):  # day 0 in three flushes (three part files), then day 20
        sink.accept(0, offset, record(f"e{offset}", 0), None)
        if offset % 2:
            sink.flush()
    sink.accept(0, 6, record("e6", 20), None)
    sink.flush()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert compact_store(tmp_path / "b", POLICY).partitions_compacted == 1

    replay = [(3, record("e3", 0)), (4, record("e4", 0)), (7, record("e1", 0)), (8, record("e6", 20)),
              (9, record("e2", 0, price=1.0)), (10, record("new", 0))]
    verdicts = {}
    for store in ("a", "b"):
        again = make_sink(tmp_path / store)
        verdicts[store] = [again.accept(0, offset, rec, None).value for offset, rec in replay]
    assert verdicts["a"] == verdicts["b"]
    assert verdicts["b"][:2] == ["redelivered", "redelivered"]


def test_a_worker_landing_late_events_while_compaction_runs_loses_nothing(tmp_path):
    sink = make_sink(tmp_path)
    sink.accept(0, 0, record("z", 100), None)
    sink.flush()
    landed, stop = [], threading.Event()

    def worker():
        for offset in range(1, 121):
            sink.accept(0, offset, record(f"late{offset}", 0), None)
            while True:
                try:
                    sink.flush()
                    break
                except OSError:  # the folder was swapped under the flush: the worker retries
                    pass
            landed.append(offset)
        stop.set()

    thread = threading.Thread(target=worker)
    thread.start()
    rounds = 0
    while not stop.is_set():
        rounds += compact_store(tmp_path, POLICY).partitions_compacted
    thread.join()
    compact_store(tmp_path, POLICY)
    ids = list(OutcomesStorage(tmp_path).get_outcomes("city", end_date=date(2017, 8, 1)).event_id)
    assert sorted(ids) == sorted(f"late{i}" for i in range(1, 121))
    assert rounds > 0
