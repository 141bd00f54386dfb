"""File operations on the outcomes store that stay safe while the landing worker writes.

Work folders live next to outcomes/, not in it (<data_dir>/.trash, <data_dir>/.compaction):
DuckDB's `outcomes/**/*.parquet` glob also matches hidden folders, so nothing half-done may sit
under outcomes/. Everything is on one filesystem, so moving a folder there is one atomic rename.
"""
from __future__ import annotations

import ctypes
import functools
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from consumers.paths import PartName, temp_name

log = logging.getLogger(__name__)
TRASH = ".trash"
STALE_TEMP_SECONDS = 60.0  # a worker temp file older than this was left by a crash


def first_per_event_id(table: pa.Table) -> pa.Table:
    """Rows of `table` whose event_id did not occur on an earlier row (order kept)."""
    indexed = table.append_column("__row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    firsts = indexed.group_by("event_id", use_threads=False).aggregate([("__row", "min")])
    return table.take(np.sort(firsts.column("__row_min").to_numpy()))


def remove_partition(data_dir: Path, folder: Path) -> int:
    """Move a date folder out of the store in one rename, then delete it; returns its row count."""
    trash = Path(data_dir) / TRASH / f"{folder.parent.name}+{folder.name}+{os.getpid()}"
    trash.parent.mkdir(parents=True, exist_ok=True)
    wait_for_worker_temps(folder)
    os.rename(folder, trash)
    fsync_dir(folder.parent)
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in trash.iterdir() if PartName.parse(p.name))
    shutil.rmtree(trash)
    return rows


def wait_for_worker_temps(folder: Path, timeout: float = 10.0) -> None:
    """Wait (up to `timeout`) while the worker is writing a part file into `folder`, so moving the
    folder does not make that flush fail (the worker would retry it, but need not)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(time.time() - _mtime(p) < STALE_TEMP_SECONDS for p in folder.glob(".*.tmp")):
            return
        time.sleep(0.05)
    log.warning("%s: the worker kept writing for %.0f s; moving the folder anyway (it retries)", folder, timeout)


def remove_empty_dirs(root: Path) -> None:
    """Remove `root` and its direct subfolders where they are empty (left-over work folders)."""
    if not root.is_dir():
        return
    for folder in [*root.iterdir(), root]:
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty, not a folder, or already gone


def write_parquet_durably(table: pa.Table, path: Path) -> None:
    """Write under a hidden temp name, fsync, rename into place, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_name(path)
    with open(temp, "wb") as fh:
        pq.write_table(table, fh, compression="zstd")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temp, path)
    fsync_dir(path.parent)


def sync_filesystem(path: Path) -> None:
    """syncfs(2): make everything written on `path`'s filesystem durable (data, inodes, folder
    entries) in one call; OSError when the kernel reports a writeback error (Linux >= 5.8)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if libc().syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def syncfs_available() -> bool:
    try:
        return hasattr(libc(), "syncfs")
    except OSError:
        return False


@functools.cache
def libc() -> ctypes.CDLL:
    """The C library of this process (syncfs, renameat2), with errno kept for ctypes.get_errno."""
    return ctypes.CDLL(None, use_errno=True)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
