"""Figures 5 and 6 on the stores the landing figures left behind (1x and 10x).

5. `bookloop retrain --all-properties --model-type all --force --no-publish` on each store, in a
   child process: wall seconds and peak RSS (the largest single process of the run, retrain pool
   workers included: RUSAGE_CHILDREN of a wrapper that runs only the retrain).
6. `OutcomesStorage.get_statistics` of one property of the 10x store, median of 20 calls, before
   and after compacting the store (`compact_store`, min age 0); file counts of that property too,
   and the first call of each series (a new OutcomesStorage has no file summaries yet).
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.report import Figure
from consumers.compaction import CompactionPolicy, compact_store
from consumers.paths import iter_part_files
from consumers.storage import OutcomesStorage

MIB = 2**20
STATS_CALLS = 20
STATS_PROPERTY = "city-0"
_WRAPPER = ("import resource, subprocess, sys, time; t = time.monotonic(); "
            "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
            "print(time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, rc)")
REPO = Path(__file__).resolve().parent.parent


def retrain_run(data_dir: Path) -> tuple[float, int]:
    """(seconds, peak RSS bytes) of one retrain of every property and model type."""
    command = [sys.executable, "-m", "batch.cli", "retrain", "--data-dir", str(data_dir), "--all-properties",
               "--model-type", "all", "--force", "--no-publish", "--json"]
    out = subprocess.run([sys.executable, "-c", _WRAPPER, *command], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout.split()
    seconds, peak, rc = float(out[0]), int(out[1]), int(out[2])
    if rc not in (0, 1):   # 1: some model not deployed (not worse-than-live) is still a full run
        raise RuntimeError(f"bookloop retrain exited with {rc} on {data_dir}")
    return seconds, peak


def measure_retrain(one_x: Path, ten_x: Path) -> Figure:
    s1, rss1 = retrain_run(one_x)
    s10, rss10 = retrain_run(ten_x)
    return Figure(
        5, "retrain all properties, 10x vs 1x", value=s10, unit="s", baseline=s1, ratio=s10 / s1,
        target="10x ≤ 60 s", passed=s10 <= 60,
        note=f"all model types, --force, no publishing; 1x = 2 properties, 10x = 20 properties",
        details=[{"name": "retrain peak RSS (largest process)", "value": rss10 / MIB, "unit": "MiB",
                  "baseline": rss1 / MIB, "ratio": rss10 / rss1, "target": "reported", "pass": None}])


def _files_of(data_dir: Path, prop: str) -> int:
    return sum(1 for p, *_ in iter_part_files(data_dir) if p == prop)


def _stats_ms(storage: OutcomesStorage, prop: str) -> list[float]:
    """Wall milliseconds of STATS_CALLS calls, in order (the first one fills the summaries)."""
    timings = []
    for _ in range(STATS_CALLS):
        started = time.perf_counter()
        storage.get_statistics(prop)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def measure_stats(ten_x: Path) -> Figure:
    files_before = _files_of(ten_x, STATS_PROPERTY)
    before = _stats_ms(OutcomesStorage(ten_x), STATS_PROPERTY)
    report = compact_store(ten_x, CompactionPolicy(horizon_days=7, min_age_seconds=0))
    files_after = _files_of(ten_x, STATS_PROPERTY)
    storage = OutcomesStorage(ten_x)   # a new instance: its first call reads every file
    after = _stats_ms(storage, STATS_PROPERTY)
    median_before, median_after = statistics.median(before), statistics.median(after)
    return Figure(
        6, "get_statistics median of 20, after vs before compaction", value=median_after, unit="ms",
        baseline=median_before, ratio=median_after / median_before, target="≤ 200 ms after",
        passed=median_after <= 200,
        note=f"property {STATS_PROPERTY} of the 10x store: {files_before} part files before, {files_after} "
             f"after; the whole store {report.files_before} -> {report.files_after} files "
             f"({report.partitions_compacted} date partitions compacted). Each series starts on a new "
             "OutcomesStorage, whose first call summarises every part file once; later calls list "
             "the folders and reuse the summaries of unchanged files. Summary: "
             + json.dumps({"rows": storage.get_statistics(STATS_PROPERTY)["total_records"]}),
        details=[{"name": "first call (no summaries yet), after compaction", "value": after[0], "unit": "ms",
                  "baseline": before[0], "ratio": after[0] / before[0], "target": "reported", "pass": None}])
