"""Reading one property's landed outcomes: partition pruning, column projection, consistent dates.

Only the property's folder is listed and only the `date=` folders inside the requested range are
opened (partition pruning); only the requested columns are decoded (projection). Each date
folder is read as one snapshot: its part files are listed and all opened before any is read, so a
compaction swapping that folder (consumers/compaction.py) shows either the old files or the merged
one; if a listed file is gone before it could be opened, or the folder was swapped before its
listing was done (the listing of a folder being deleted can be partial), it is listed again. Open files
stay readable even when a retention or compaction deletes them meanwhile. Dates are read by a few
threads (pyarrow releases the GIL).
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Callable, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from consumers.paths import encode_segment, outcomes_root
from consumers.rows import ROW_SCHEMA

log = logging.getLogger(__name__)
T = TypeVar("T")
DATE_PREFIX = "date="
PROPERTY_PREFIX = "property_id="
_READ_ATTEMPTS = 5
_THREADS = 4


@dataclass(frozen=True)
class Scan:
    table: pa.Table
    bytes: int   # size of the part files read


def property_dir(data_dir: str | Path, property_id: str) -> Path:
    return outcomes_root(data_dir) / f"{PROPERTY_PREFIX}{encode_segment(property_id)}"


def date_dirs(folder: Path) -> dict[date, Path]:
    """The visible `date=` folders of a property folder, by date (hidden ones are skipped)."""
    found = {}
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return found
    for entry in entries:
        if entry.name.startswith(DATE_PREFIX):
            try:
                found[date.fromisoformat(entry.name[len(DATE_PREFIX):])] = entry
            except ValueError:
                continue
    return found


def scan(folder: Path, columns: list[str] | None, start: date | None = None, end: date | None = None) -> Scan | None:
    """The property's rows with start <= date <= end; `columns` may include "date" (None: all).
    None when the property has no date partition at all."""
    dates = date_dirs(folder)
    if not dates:
        return None
    wanted = [(day, path) for day, path in sorted(dates.items())
              if (start is None or day >= start) and (end is None or day <= end)]
    with ThreadPoolExecutor(_THREADS) as pool:
        parts = list(pool.map(lambda item: retry_vanished(lambda: read_date(item[1], item[0], columns)), wanted))
    tables = [table for day_tables, _ in parts for table in day_tables]
    table = pa.concat_tables(tables, promote_options="default") if tables else _empty(columns)
    return Scan(table, sum(size for _, size in parts))


def read_date(folder: Path, day: date, columns: list[str] | None) -> tuple[list[pa.Table], int]:
    """All part files of one date folder, opened together before reading (one snapshot).

    The folder is opened once and its files are opened relative to it, so the listing and the
    files come from one directory even if a compaction swaps another one in meanwhile. A listing
    counts only if the folder was still at its path once the listing was done: a swapped-out
    folder is deleted right after the swap, so a listing finished later may be partial; then
    FileNotFoundError makes retry_vanished list again."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return [], 0  # the whole date was removed by retention
    handles = []
    try:
        names = sorted(e.name for e in os.scandir(dir_fd) if _visible_parquet(e.name))
        if os.stat(folder).st_ino != os.fstat(dir_fd).st_ino:
            raise FileNotFoundError(f"{folder} was swapped while it was listed")
        handles.extend(os.fdopen(os.open(name, os.O_RDONLY, dir_fd=dir_fd), "rb") for name in names)
        file_columns = None if columns is None else [c for c in columns if c != "date"]
        tables = [pq.ParquetFile(fh).read(columns=file_columns) for fh in handles]
        size = sum(os.fstat(fh.fileno()).st_size for fh in handles)
    finally:
        for fh in handles:
            fh.close()
        os.close(dir_fd)
    if columns is None or "date" in columns:
        tables = [t.append_column("date", pa.array([day] * t.num_rows, pa.date32())) for t in tables]
    return tables, size


def retry_vanished(read: Callable[[], T]) -> T:
    """Run `read`, again with a fresh listing if a file vanished under it (compaction, retention)."""
    for attempt in range(1, _READ_ATTEMPTS + 1):
        try:
            return read()
        except FileNotFoundError:
            if attempt == _READ_ATTEMPTS:
                raise
            log.info("a part file vanished before it was opened (compaction or retention); listing again")
    raise AssertionError("unreachable")


def _visible_parquet(name: str) -> bool:
    """What pyarrow, DuckDB and Spark readers take from a date folder: no hidden or temp files."""
    return name.endswith(".parquet") and not name.startswith((".", "_"))


def _empty(columns: list[str] | None) -> pa.Table:
    schema = ROW_SCHEMA.append(pa.field("date", pa.date32()))
    return schema.empty_table() if columns is None else pa.schema([schema.field(c) for c in columns]).empty_table()
