"""Figures 1 and 4: the real worker on the embedded broker.

1. Landing throughput: the full real replay (5 % re-sent) is published to a 4-partition topic
   first; then the Faust floor (bench/floor_app.py: decode only, take() batches) and the real
   `bookloop worker` (drift on) each consume it in their own group. Each is timed from its first
   consumed event to its group having committed past the last delivered offset. Three such pairs
   run one after the other; the figure is the pair with the median ratio.
4. Memory: the worker's peak RSS (VmHWM of it and its decode helpers, read before stopping it)
   after the 1x replay above versus after the 10x data (bench/records.py) on a topic of its own.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from bench import kafka_run
from bench.records import real_replay, tenfold_count, tenfold_outcomes
from bench.report import Figure

MIB = 2**20
PAIRS = 3   # the machine is noisy: the median of three side-by-side pairs


def measure_throughput(bootstrap: str, work: Path, limit: int | None = None) -> tuple[Figure, kafka_run.Consumed]:
    """PAIRS floor-then-worker runs over the same topic, each pair in its own groups and store; the
    figure is the pair with the median ratio; figure 4's 1x peak is the median of the three workers'."""
    settings = kafka_run.run_settings(bootstrap, work / "x1", "x1")
    records = real_replay()[:limit]
    sent, last = kafka_run.prepublish(settings, records)
    pairs = []
    for i in range(PAIRS):
        run = settings if i == 0 else settings.replace(group_id=f"{settings.group_id}-{i}",
                                                        data_dir=str(work / f"x1-{i}"))
        floor = kafka_run.run_floor(run, sent, last, work)
        worker = kafka_run.run_worker(run, sent, last, work, f"worker-x1-{i}")
        pairs.append((worker.rate / floor.rate, worker, floor))
        if i:
            shutil.rmtree(run.data_dir, ignore_errors=True)
    ratio, worker, floor = sorted(pairs, key=lambda pair: pair[0])[PAIRS // 2]
    two = _two_workers(settings, sent, last, work, worker.rate)
    figure = Figure(
        1, "landing throughput, 1 worker vs Faust floor", value=worker.rate, unit="ev/s",
        baseline=floor.rate, ratio=ratio, target="≥ 0.8× floor", passed=ratio >= 0.8,
        note=f"{sent:,} pre-published events (the real replay, 5 % re-sent), 4 partitions; {PAIRS} pairs "
             f"of runs (floor, then worker), ratios {', '.join(f'{r:.2f}' for r, _, _ in pairs)}; the "
             f"median pair: worker {worker.seconds:.1f} s, floor {floor.seconds:.1f} s from first consumed "
             f"to all committed; worker landed {worker.metrics.get('bookloop_events_landed_total', 0):,.0f} "
             f"rows in {worker.metrics.get('bookloop_parquet_files_written_total', 0):,.0f} files; 2 workers: "
             f"the 1x data's 2 properties hash to 2 of the 4 partitions, on {os.cpu_count()} cores shared "
             f"by both workers, their decode helpers and the broker",
        details=[two])
    peaks = sorted((w for _, w, _ in pairs), key=lambda w: w.peak_rss)
    return figure, peaks[PAIRS // 2]   # figure 4's 1x: the median peak of the three worker runs


def _two_workers(settings, sent: int, last: dict[int, int], work: Path, one_rate: float) -> dict:
    """Detail row: 2 workers in one group over the same topic, against the 1-worker rate."""
    row = {"name": "2 workers vs 1 (4 partitions)", "unit": "ev/s", "baseline": one_rate,
           "target": "reported", "pass": None}
    two_settings = settings.replace(group_id=f"{settings.group_id}-two", data_dir=str(work / "x1-two"))
    try:
        two = kafka_run.run_workers(two_settings, 2, sent, last, work, "two-workers")
    except Exception as exc:
        crash = str(exc).strip().splitlines()[-1][:160]
        row.update(value=None, target=f"not measured: {type(exc).__name__} ({crash})")
        return row
    return {**row, "value": two.rate, "ratio": two.rate / one_rate}


def measure_memory(bootstrap: str, work: Path, one_x: kafka_run.Consumed) -> Figure:
    settings = kafka_run.run_settings(bootstrap, work / "x10", "x10")
    sent, last = kafka_run.prepublish(settings, tenfold_outcomes())
    ten_x = kafka_run.run_worker(settings, sent, last, work, "worker-x10", timeout=1200)
    ratio = ten_x.peak_rss / one_x.peak_rss
    return Figure(
        4, "worker peak RSS, 10x vs 1x replay", value=ten_x.peak_rss / MIB, unit="MiB",
        baseline=one_x.peak_rss / MIB, ratio=ratio, target="≤ 1.3×", passed=ratio <= 1.3,
        note=f"VmHWM of the worker process plus its decode helper; 1x = the median of figure 1's three "
             f"worker runs; 10x = {tenfold_count():,} events (real data re-keyed, "
             f"dates shifted 0-9 days, 20 properties) landed in {ten_x.seconds:.0f} s "
             f"({ten_x.rate:,.0f} ev/s)")
