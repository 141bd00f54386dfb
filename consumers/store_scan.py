"""Reading one property's landed outcomes: partition pruning, column projection, consistent dates.

Only the property's folder is listed and only the `date=` folders inside the requested range are
opened (partition pruning); only the requested columns are decoded (projection). Each date
folder is read as one snapshot: its part files are listed and all opened before any is read, so a
compaction swapping that folder (consumers/compaction.py) shows either the old files or the merged
one; if a listed file is gone before it could be opened, or the folder was swapped before its
listing was done (the listing of a folder being deleted can be partial), it is listed again. Open files
stay readable even when a retention or compaction deletes them meanwhile. Dates are read by a few
threads (pyarrow releases the GIL).

`summarise` reads the same snapshots for a per-file summary (get_statistics) and keeps the
summaries in a SummaryCache by file identity, so a file read once is only stat'ed afterwards.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Callable, Generic, TypeVar

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
_WHOLE_FILE_BYTES = 1 << 20   # a part file this small is read in one call (cheaper than pyarrow's reads through Python)


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
    files come from one directory even if a compaction swaps another one in meanwhile (and see
    _listing)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return [], 0  # the whole date was removed by retention
    handles = []
    try:
        names = _listing(folder, dir_fd)
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


def summarise(folder: Path, summarise_file: Callable[[pq.ParquetFile], T], cache: SummaryCache[T],
              reusable: Callable[[T], bool]) -> tuple[list[T], int] | None:
    """(a summary of each part file of every date, oldest date first and by name within a date; their
    total size). A file's summary comes from `cache` where `reusable` accepts it, else from
    `summarise_file` over the opened file. None when the property has no date partition at all.
    Dates whose files are all cached are done in this thread (listing them is all the work); the
    others are read by a few threads."""
    dates = date_dirs(folder)
    if not dates:
        return None
    paths = [os.fspath(path) for _, path in sorted(dates.items())]   # str: cheaper in the many os calls
    parts = [retry_vanished(lambda: summarise_date(path, None, cache, reusable)) for path in paths]
    to_read = [index for index, part in enumerate(parts) if part is None]
    with ThreadPoolExecutor(_THREADS) as pool:
        read = pool.map(lambda i: retry_vanished(lambda: summarise_date(paths[i], summarise_file, cache, reusable)),
                        to_read)
        for index, part in zip(to_read, read):
            parts[index] = part
    return [summary for summaries, _ in parts for summary in summaries], sum(size for _, size in parts)


def summarise_date(folder: str | Path, summarise_file: Callable[[pq.ParquetFile], T] | None, cache: SummaryCache[T],
                   reusable: Callable[[T], bool]) -> tuple[list[T], int] | None:
    """One date folder as one snapshot, like read_date: listed, then each file either stat'ed (its
    summary is cached) or opened, all before any is read. Without `summarise_file`: None as soon as
    a file is not cached."""
    started_ns = cache.clock()
    try:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return [], 0
    entries: list[tuple[FileKey, T | None, object]] = []   # (identity, cached summary or None, open file)
    try:
        for name in _listing(folder, dir_fd):
            key = file_key(os.stat(name, dir_fd=dir_fd))
            summary = cache.get(key)
            if summary is not None and reusable(summary):
                entries.append((key, summary, None))
                continue
            if summarise_file is None:
                return None
            fh = os.fdopen(os.open(name, os.O_RDONLY, dir_fd=dir_fd), "rb")
            entries.append((file_key(os.fstat(fh.fileno())), None, fh))  # the identity of what is read
        summaries = [summary if fh is None else _summarise_open(fh, key, summarise_file, cache, started_ns)
                     for key, summary, fh in entries]
    finally:
        for _, _, fh in entries:
            if fh is not None:
                fh.close()
        os.close(dir_fd)
    return summaries, sum(key[2] for key, _, _ in entries)


def _summarise_open(fh, key: FileKey, summarise_file: Callable[[pq.ParquetFile], T], cache: SummaryCache[T],
                    started_ns: int) -> T:
    source = pa.BufferReader(fh.read()) if key[2] <= _WHOLE_FILE_BYTES else fh
    summary = summarise_file(pq.ParquetFile(source))
    cache.put(key, summary, started_ns)
    return summary


FileKey = tuple[int, int, int, int, int]   # st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns


def file_key(stat: os.stat_result) -> FileKey:
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


class SummaryCache(Generic[T]):
    """Summaries of part files by file identity (device, inode, size, mtime, ctime), at most
    `max_files` of them (the least recently used go first). Thread-safe.

    Why a hit is the file's current content: the worker and compaction never change a part file
    in place (they write a temp file and rename it), and any change to a file's content or any
    new file at its path gives a changed identity, because a summary is only kept for a file whose
    ctime is more than `settle_ns` older than the moment its listing began. A change in place sets a
    newer ctime; a new file that reuses the inode number is created after that inode was freed,
    i.e. after the summarised file was opened, so it too has a newer ctime, even with coarse
    (per-tick) file timestamps. Younger files are read on every call. This holds as long as the
    wall clock does not step back by more than `settle_ns`.
    """

    def __init__(self, max_files: int, settle_ns: int = 2_000_000_000, clock: Callable[[], int] = time.time_ns):
        self.max_files, self.settle_ns, self.clock = max_files, settle_ns, clock
        self._entries: OrderedDict[FileKey, T] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: FileKey) -> T | None:
        with self._lock:
            summary = self._entries.get(key)
            if summary is not None:
                self._entries.move_to_end(key)
            return summary

    def put(self, key: FileKey, summary: T, started_ns: int) -> None:
        """Keep `summary` of the file `key`, whose listing began at `started_ns` (by `clock`)."""
        if key[4] >= started_ns - self.settle_ns:
            return   # too young to be told apart from a later file with the same identity
        with self._lock:
            self._entries[key] = summary
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_files:
                self._entries.popitem(last=False)


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


def _listing(folder: str | Path, dir_fd: int) -> list[str]:
    """The part files of the open date folder `dir_fd`, by name. The listing counts only if the
    folder was still at its path once it was done: a swapped-out folder is deleted right after the
    swap, so a listing finished later may be partial; then FileNotFoundError makes retry_vanished
    list again."""
    names = sorted(e.name for e in os.scandir(dir_fd) if _visible_parquet(e.name))
    if os.stat(folder).st_ino != os.fstat(dir_fd).st_ino:
        raise FileNotFoundError(f"{folder} was swapped while it was listed")
    return names


def _visible_parquet(name: str) -> bool:
    """What pyarrow, DuckDB and Spark readers take from a date folder: no hidden or temp files."""
    return name.endswith(".parquet") and not name.startswith((".", "_"))


def _empty(columns: list[str] | None) -> pa.Table:
    schema = ROW_SCHEMA.append(pa.field("date", pa.date32()))
    return schema.empty_table() if columns is None else pa.schema([schema.field(c) for c in columns]).empty_table()
