"""Compaction: merge a date partition's part files into one file, deduplicated by event_id.

Which partitions (so the landing worker never misses what it needs to rebuild its dedupe state,
see dedupe.py and LandingSink._resume): a date D of property P is compacted only when
  * D < newest landed date of P - (dedupe horizon + 1 day), and the same holds against the newest
    date of every Kafka partition whose files are in D (the worker's horizon is per partition),
  * D holds at least `min_files` part files, more than one of some Kafka partition, and its newest
    file is older than `min_age_seconds` (a worker that restarted after a crash re-reads recent,
    possibly uncommitted files first).
The merged file keeps every row's `source_partition/source_offset` and is named like a part file
(`<topic>+<partition>+<first>+<last>+<epoch>.parquet` over the merged offsets; one file per Kafka
partition and topic id found in D), so the worker's rebuild still recognises redelivered messages.

How (atomic for readers that list the folder): the merged file is written and fsynced in a
staging folder outside outcomes/ (<data_dir>/.compaction/...; DuckDB globs see hidden folders),
the names of the merged source files are recorded in a hidden manifest in D, and the staging
folder and D are swapped with one renameat2(RENAME_EXCHANGE): a reader lists either the old files
or the new one, never both or neither. Part files the worker landed in D while we merged are then
moved into the new D (they are invisible for that moment), and the old folder is deleted. A reader
that listed the old files but opens one only after the deletion must list again (store_scan.py
does). A compaction killed midway is completed or undone by the next run; a lock file keeps two
compactions of one store apart. Running it twice changes nothing: a compacted partition holds one
file per Kafka partition.
"""
from __future__ import annotations

import ctypes
import fcntl
import json
import logging
import os
import shutil
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from consumers.paths import PartName, iter_part_files, outcomes_root
from consumers.store_files import (first_per_event_id, fsync_dir, libc, remove_empty_dirs,
                                   wait_for_worker_temps, write_parquet_durably)
from schemas.errors import BookloopError

log = logging.getLogger(__name__)
MANIFEST = ".compaction-sources.json"
STAGING = ".compaction"
DEFAULT_MIN_AGE_SECONDS = 600.0
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


class CompactionError(BookloopError):
    """The store cannot be compacted (e.g. the filesystem cannot swap folders atomically)."""


@dataclass(frozen=True)
class CompactionPolicy:
    horizon_days: int
    min_files: int = 2
    min_age_seconds: float = DEFAULT_MIN_AGE_SECONDS


@dataclass
class CompactionReport:
    files_before: int = 0
    files_after: int = 0
    partitions_compacted: int = 0
    rows_before: int = 0
    rows_after: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Listing:
    """Every part file of the store by (property, date), and the newest dates the rules need."""
    files: dict[tuple[str, date], list[tuple[Path, PartName]]] = field(default_factory=lambda: defaultdict(list))
    newest_property: dict[str, date] = field(default_factory=dict)
    newest_partition: dict[tuple[str, str, int], date] = field(default_factory=dict)

    @classmethod
    def of(cls, data_dir: Path) -> "_Listing":
        listing = cls()
        for prop, day_text, path, part in iter_part_files(data_dir):
            day = date.fromisoformat(day_text)
            listing.files[(prop, day)].append((path, part))
            listing.newest_property[prop] = max(day, listing.newest_property.get(prop, day))
            key = _group(part)
            listing.newest_partition[key] = max(day, listing.newest_partition.get(key, day))
        return listing

    def eligible(self, prop: str, day: date, policy: CompactionPolicy, now: float) -> bool:
        sources = self.files[(prop, day)]
        keep_out = timedelta(days=policy.horizon_days + 1)
        if len(sources) < policy.min_files or len(sources) == len({_group(part) for _, part in sources}):
            return False
        if day >= self.newest_property[prop] - keep_out:
            return False
        if any(day >= self.newest_partition[_group(part)] - keep_out for _, part in sources):
            return False
        return now - max(path.stat().st_mtime for path, _ in sources) >= policy.min_age_seconds


def compact_store(data_dir: str | Path, policy: CompactionPolicy, property_id: str | None = None,
                  now: float | None = None) -> CompactionReport:
    """Compact every eligible date partition (of one property, or all); see the module doc."""
    data_dir = Path(data_dir)
    if not outcomes_root(data_dir).is_dir():
        raise CompactionError(f"no outcomes store under {data_dir}; check --data-dir / BOOKLOOP_DATA_DIR")
    with _only_compaction(data_dir):
        recover(data_dir)
        listing = _Listing.of(data_dir)
        now = time.time() if now is None else now
        report = CompactionReport()
        for (prop, day), sources in sorted(listing.files.items()):
            if property_id is not None and prop != property_id:
                continue
            report.files_before += len(sources)
            if not listing.eligible(prop, day, policy, now):
                report.files_after += len(sources)
                continue
            written, rows_in, rows_out = compact_partition(data_dir, sources[0][0].parent, sources)
            report.files_after += written
            report.partitions_compacted += 1
            report.rows_before += rows_in
            report.rows_after += rows_out
        remove_empty_dirs(data_dir / STAGING)
    return report


@contextmanager
def _only_compaction(data_dir: Path):
    """Hold <data_dir>/.compaction.lock: two compactions of one store would trip over each other."""
    with open(data_dir / f"{STAGING}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CompactionError(f"another compaction of {data_dir} is running; try again when it is done") from None
        yield


def compact_partition(data_dir: Path, folder: Path, sources: list[tuple[Path, PartName]]) -> tuple[int, int, int]:
    """Swap `folder` for one holding its sources merged; returns (files written, rows in, rows out)."""
    staging = staging_dir(data_dir, folder)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    merged, rows_in = merge_sources(sources)
    for name, table in merged.items():
        write_parquet_durably(table, staging / name)
    _write_manifest(folder, [path.name for path, _ in sources])
    wait_for_worker_temps(folder)
    exchange_dirs(staging, folder)
    fsync_dir(folder.parent)
    _move_newcomers(staging, folder)
    shutil.rmtree(staging)
    log.info("compacted %s: %d files, %d rows -> %d files, %d rows", folder, len(sources), rows_in,
             len(merged), sum(t.num_rows for t in merged.values()))
    return len(merged), rows_in, sum(t.num_rows for t in merged.values())


def merge_sources(sources: list[tuple[Path, PartName]]) -> tuple[dict[str, pa.Table], int]:
    """The sources' rows, first occurrence of each event_id only (in part-name order), split into
    one table per (topic, topic id, partition), each keyed by its part file name."""
    ordered = sorted(sources, key=lambda s: (_group(s[1]), s[1].first_offset, s[1].last_offset))
    groups = sorted({_group(part) for _, part in ordered})
    tables = []
    for path, part in ordered:
        table = pq.ParquetFile(path).read()
        tables.append(table.append_column("__group", pa.array(np.full(table.num_rows, groups.index(_group(part))))))
    combined = first_per_event_id(pa.concat_tables(tables, promote_options="default"))
    out = {}
    for index, key in enumerate(groups):
        rows = combined.filter(pc.equal(combined.column("__group"), index)).drop_columns(["__group"])
        if rows.num_rows:
            parts = [part for _, part in ordered if _group(part) == key]
            name = PartName(key[0], key[2], min(p.first_offset for p in parts),
                            max(p.last_offset for p in parts), key[1])
            out[name.filename()] = rows
    return out, sum(t.num_rows for t in tables)


def recover(data_dir: Path) -> None:
    """Finish (swap happened: move newcomers back) or undo (it did not) an interrupted compaction."""
    root = Path(data_dir) / STAGING
    if not root.is_dir():
        return
    for prop_dir in root.iterdir():
        for staging in prop_dir.iterdir():
            live = outcomes_root(data_dir) / prop_dir.name / staging.name
            if (staging / MANIFEST).exists() and live.is_dir():
                _move_newcomers(staging, live)
            else:
                (live / MANIFEST).unlink(missing_ok=True)
            shutil.rmtree(staging)
            log.warning("recovered an interrupted compaction of %s", live)


def staging_dir(data_dir: Path, folder: Path) -> Path:
    return Path(data_dir) / STAGING / folder.parent.name / folder.name


def exchange_dirs(a: Path, b: Path) -> None:
    """Atomically swap two folders (Linux renameat2 with RENAME_EXCHANGE, glibc >= 2.28)."""
    renameat2 = getattr(libc(), "renameat2", None)
    if renameat2 is None:
        raise CompactionError("compaction needs renameat2 (Linux with glibc >= 2.28) to swap folders atomically")
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        errno = ctypes.get_errno()
        raise CompactionError(f"cannot swap {a} and {b} atomically: {os.strerror(errno)} "
                              "(the filesystem must support RENAME_EXCHANGE, e.g. ext4, xfs, btrfs, tmpfs)")


def _write_manifest(folder: Path, names: list[str]) -> None:
    path = folder / MANIFEST
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(sorted(names), fh)
        fh.flush()
        os.fsync(fh.fileno())


def _move_newcomers(old: Path, live: Path) -> None:
    """Move visible files of `old` that were not merged (landed during the merge) into `live`."""
    merged = set(json.loads((old / MANIFEST).read_text(encoding="utf-8")))
    moved = False
    for entry in old.iterdir():
        if entry.name.startswith(".") or entry.name in merged:
            continue
        if (live / entry.name).exists():
            raise CompactionError(f"{entry} landed during the compaction and its name is taken in {live}; "
                                  "both are kept for inspection (this indicates a bug)")
        os.rename(entry, live / entry.name)
        moved = True
    if moved:
        fsync_dir(live)


def _group(part: PartName) -> tuple[str, str, int]:
    return part.topic, part.epoch, part.partition

