"""Figure 2: the seed's storage design versus bookloop's landing, in this process, on the same
119,390 real events in batches of 100.

The seed's way: per property one parquet file; each batch reads it, concatenates the new rows,
drops duplicate event ids and rewrites the whole file. bookloop's way: the LandingSink (dedupe,
event-time windows, durable part files), flushing what is due after every batch.
Bytes written are what the process passed to write(2) (/proc/self/io wchar) during the run.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd
from prometheus_client import CollectorRegistry

from bench.io_counter import tree_size, written_bytes
from bench.records import real_outcomes
from bench.report import Figure
from consumers import rows as rowmod
from consumers.landing import LandingSink
from consumers.paths import outcomes_root
from monitoring.metrics import IngestMetrics
from schemas.settings import Settings

BATCH = 100
PARTITIONS = {"city": 0, "resort": 1}   # one Kafka partition per property, offsets in replay order


def _batches(records, size: int = BATCH):
    for start in range(0, len(records), size):
        yield records[start:start + size]


def seed_way(records, root: Path) -> tuple[float, int, int]:
    """(seconds, bytes written, final bytes) of the seed's read-concat-dedupe-rewrite design."""
    root.mkdir(parents=True, exist_ok=True)
    before, started = written_bytes(), time.perf_counter()
    for batch in _batches(records):
        per_property = defaultdict(list)
        for record in batch:
            per_property[record["property_id"]].append(rowmod.record_to_row(record))
        for prop, rows in per_property.items():
            path = root / f"{prop}.parquet"
            new = pd.DataFrame(rows, columns=list(rowmod.CONTENT_COLUMNS))
            frame = pd.concat([pd.read_parquet(path), new], ignore_index=True) if path.exists() else new
            frame.drop_duplicates(subset="event_id", keep="first").to_parquet(path, index=False)
    seconds = time.perf_counter() - started
    return seconds, written_bytes() - before, tree_size(root)


def bookloop_way(records, data_dir: Path) -> tuple[float, int, int]:
    """(seconds, bytes written, final bytes) of the LandingSink fed the same batches."""
    settings = Settings(data_dir=str(data_dir))
    sink = LandingSink(settings, "booking-outcomes", "bench", IngestMetrics(CollectorRegistry()))
    offsets = defaultdict(int)
    before, started = written_bytes(), time.perf_counter()
    for batch in _batches(records):
        for record in batch:
            partition = PARTITIONS[record["property_id"]]
            sink.accept(partition, offsets[partition], record, None)
            offsets[partition] += 1
        sink.flush_due()
    sink.flush()
    seconds = time.perf_counter() - started
    return seconds, written_bytes() - before, tree_size(outcomes_root(data_dir))


def measure(work_dir: Path | None = None) -> Figure:
    records = list(real_outcomes())
    work = Path(tempfile.mkdtemp(prefix="bench-seed-", dir=work_dir))
    try:
        ours_s, ours_w, ours_size = bookloop_way(records, work / "bookloop")
        seed_s, seed_w, seed_size = seed_way(records, work / "seed")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    speedup, amplification = seed_s / ours_s, ours_w / ours_size
    seed_amplification = seed_w / seed_size
    return Figure(
        2, "landing vs the seed's storage (wall time)", value=ours_s, unit="s", baseline=seed_s,
        ratio=speedup, target="≥ 4× faster, bytes written ≤ 1.5× dataset",
        passed=speedup >= 4 and amplification <= 1.5,
        note=f"{len(records):,} real events in batches of {BATCH}, both in this process; ratio = seed "
             f"seconds / bookloop seconds. Bytes written: bookloop {ours_w / 2**20:.1f} MiB for a "
             f"{ours_size / 2**20:.1f} MiB store; the seed {seed_w / 2**20:.0f} MiB for a "
             f"{seed_size / 2**20:.1f} MiB store",
        details=[{"name": "write amplification (bytes written / dataset)", "value": amplification, "unit": "×",
                  "baseline": seed_amplification, "ratio": amplification / seed_amplification,
                  "target": "≤ 1.5×", "pass": amplification <= 1.5}])
