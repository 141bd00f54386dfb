"""Figures 5 and 6 on the stores the landing figures left behind (1x and 10x).

5. `bookloop retrain --all-properties --model-type all --force --no-publish` on each store, in a
   child process: wall seconds and peak RSS (the largest single process of the run, retrain pool
   workers included: RUSAGE_CHILDREN of a wrapper that runs only the retrain).
6. `OutcomesStorage.get_statistics` of one property of the 10x store, median of 20 calls, before
   and after compacting the store (`compact_store`, min age 0); file counts of that property too.
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


def _median_stats_ms(storage: OutcomesStorage, prop: str) -> float:
    timings = []
    for _ in range(STATS_CALLS):
        started = time.perf_counter()
        storage.get_statistics(prop)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def measure_stats(ten_x: Path) -> Figure:
    storage = OutcomesStorage(ten_x)
    files_before = _files_of(ten_x, STATS_PROPERTY)
    before = _median_stats_ms(storage, STATS_PROPERTY)
    report = compact_store(ten_x, CompactionPolicy(horizon_days=7, min_age_seconds=0))
    files_after = _files_of(ten_x, STATS_PROPERTY)
    after = _median_stats_ms(storage, STATS_PROPERTY)
    return Figure(
        6, "get_statistics median of 20, after vs before compaction", value=after, unit="ms",
        baseline=before, ratio=after / before, target="≤ 200 ms after", passed=after <= 200,
        note=f"property {STATS_PROPERTY} of the 10x store: {files_before} part files before, {files_after} "
             f"after; the whole store {report.files_before} -> {report.files_after} files "
             f"({report.partitions_compacted} date partitions compacted). Summary: "
             + json.dumps({"rows": storage.get_statistics(STATS_PROPERTY)["total_records"]}))
