"""The parquet sink: event-time tumbling windows per (Kafka partition, property), flushed to
durable part files, with offsets released for commit only after the files are durable.

Contract (like a Kafka Connect sink): `accept()` records, `flush_due()` / `flush()`, and
`release()` of partitions on rebalance. It knows nothing of Faust: every accepted record comes
with an opaque `handle` (the Faust event) that is handed back once it is safe to commit.

Windows: a record belongs to [start, start + window) of its event time. A partition's watermark is
the newest event time it has seen; a window closes when the watermark passes its end plus the
allowed lateness. Closed windows are flushed after every batch. A record for a window that
already closed is *late*: it is counted and still lands, in a new part file. All open windows are
flushed when the buffer holds `flush_max_events` records or its oldest record has waited
`flush_interval_seconds` of wall time (liveness for quiet live traffic). A record's wait counts
from when it was produced (its Kafka timestamp) when that is less than the interval ago, so the
fetch and batching delays are inside the interval; an older record (a backlog being caught up)
counts from when the worker read it, so a catch-up still lands whole windows, not a file per batch;
once the stream runs dry (the worker says so), windows holding only such backlog records land at
once instead of waiting out the interval: nothing more is coming to fill them. Files never depend
on the wall clock for correctness: whatever the cut, each file holds distinct offsets and its name says
which, and dedupe state is rebuilt from the files themselves (see dedupe.py).

Durability order of a flush: write each file under a hidden temp name and make it durable -> link
it to its final name (never overwriting) -> make the folders durable -> only then hand back the
handles. "Durable" is one syncfs(2) of the store's filesystem per step (BOOKLOOP_DURABILITY=syncfs,
the default: a replay's flush lands a file for each of many days, and 2 syncfs cost less than
2 fsyncs per file) or an fsync of every file and changed folder (=fsync).
"""
from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from consumers import failpoints
from consumers import rows as rowmod
from consumers.dedupe import DedupeIndex, Verdict
from consumers.paths import PartName, iter_part_files, partition_dir, temp_name
from consumers.store_files import fsync_dir, sync_filesystem, syncfs_available
from monitoring.metrics import IngestMetrics
from schemas.settings import Settings

log = logging.getLogger(__name__)
DAY_MS = 86_400_000
# Part files are small (a window of one partition and property): snappy costs a third of zstd's
# time on them, and min/max statistics of the long text columns would be most of the footer.
# Compaction rewrites old dates with zstd.
PART_FILE_OPTIONS = {"compression": "snappy",
                     "write_statistics": [n for n in rowmod.ROW_SCHEMA.names if n not in ("event_id", "features")]}
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@dataclass
class _Window:
    rows: list[tuple] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    handles: list[Any] = field(default_factory=list)
    first_wall: float = 0.0
    backlog: bool = False   # every record was already older than the flush interval when read


@dataclass
class _PartitionState:
    dedupe: DedupeIndex
    watermark_ms: int = 0


@dataclass(frozen=True)
class WindowKey:
    partition: int
    property_id: str
    start_ms: int


class LandingSink:
    def __init__(self, settings: Settings, topic: str, epoch: str, metrics: IngestMetrics,
                 clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.topic = topic
        self.epoch = epoch
        self.metrics = metrics
        self._clock = clock
        self._window_ms = settings.window_seconds * 1000
        self._lateness_ms = settings.lateness_seconds * 1000
        self._windows: dict[WindowKey, _Window] = {}
        self._partitions: dict[int, _PartitionState] = {}
        self._landed_files: dict[int, list[tuple[str, Path, PartName]]] | None = None
        self._buffered = 0
        self._unsynced_dirs: set[Path] = set()
        self._root = Path(settings.data_dir)
        self._syncfs = settings.durability == "syncfs" and syncfs_available()
        if settings.durability == "syncfs" and not self._syncfs:
            log.warning("syncfs(2) is not available here: flushes fsync every file and folder instead")
        self._listeners: list[Callable[[WindowKey, pa.Table], None]] = []

    def add_listener(self, listener: Callable[["WindowKey", pa.Table], None]) -> None:
        """Call `listener(window key, table)` for every window after its file is durable."""
        self._listeners.append(listener)

    # ---- accepting records -------------------------------------------------------------
    def accept(self, partition: int, offset: int, record: dict, handle: Any,
               produced_at: float | None = None) -> Verdict:
        """Buffer a validated record unless it already landed. Non-NEW verdicts: ack at once.
        `produced_at`: the message's Kafka timestamp (epoch seconds), when known."""
        return self.accept_row(partition, offset, record["property_id"], rowmod.record_to_row(record),
                               handle, produced_at)

    def accept_row(self, partition: int, offset: int, property_id: str, row: tuple, handle: Any,
                   produced_at: float | None = None) -> Verdict:
        """`accept` of a record already turned into its row (rows.record_to_row)."""
        state = self._partitions.get(partition) or self._resume(partition, offset)
        digest = rowmod.row_digest(row)
        verdict = state.dedupe.check(row[0], digest, offset)
        if verdict is not Verdict.NEW:
            self._count(verdict)
            return verdict
        ts_ms = row[rowmod.TIMESTAMP_INDEX]
        state.dedupe.add(row[0], digest, offset, ts_ms // DAY_MS)
        start = ts_ms - ts_ms % self._window_ms
        if self._closed(start, state.watermark_ms):
            self.metrics.late.inc()
        state.watermark_ms = max(state.watermark_ms, ts_ms)
        waiting_since, backlog = self._waiting_since(produced_at)
        window = self._windows.get(key := WindowKey(partition, property_id, start))
        if window is None:
            window = self._windows[key] = _Window(first_wall=waiting_since, backlog=backlog)
        else:
            window.backlog = window.backlog and backlog
            if waiting_since < window.first_wall:
                window.first_wall = waiting_since
        window.rows.append(row)
        window.offsets.append(offset)
        window.handles.append(handle)
        self._buffered += 1
        return verdict

    def _waiting_since(self, produced_at: float | None) -> tuple[float, bool]:
        """On the sink's clock: when the record started waiting (see the module doc), and
        whether it is part of a backlog (produced at least the flush interval ago)."""
        now = self._clock()
        if produced_at is None:
            return now, False
        age = time.time() - produced_at
        if age >= self.settings.flush_interval_seconds:
            return now, True
        return (now - age if age > 0 else now), False

    def _count(self, verdict: Verdict) -> None:
        counter = {Verdict.REDELIVERED: self.metrics.redelivered,
                   Verdict.DUPLICATE: self.metrics.duplicates,
                   Verdict.CONFLICT: self.metrics.conflicts}[verdict]
        counter.inc()
        if verdict is Verdict.CONFLICT:
            self.metrics.duplicates.inc()

    def _closed(self, start_ms: int, watermark_ms: int) -> bool:
        return start_ms + self._window_ms + self._lateness_ms <= watermark_ms

    # ---- flushing ----------------------------------------------------------------------
    @property
    def buffered(self) -> int:
        return self._buffered

    def flush_due(self, drained: bool = False) -> list[Any]:
        """Flush what must land now; returns the handles that are now safe to commit.
        `drained`: the stream has nothing more to hand over for now, so windows holding only
        backlog records land too (they waited only to fill up while the backlog kept coming)."""
        if not self._windows:
            return []
        waited = self._clock() - min(w.first_wall for w in self._windows.values())
        if self._buffered >= self.settings.flush_max_events or waited >= self.settings.flush_interval_seconds:
            return self.flush()
        due = [k for k, w in self._windows.items()
               if (drained and w.backlog) or self._closed(k.start_ms, self._partitions[k.partition].watermark_ms)]
        return self.flush(due) if due else []

    def flush(self, keys: Iterable[WindowKey] | None = None) -> list[Any]:
        """Land the given windows (default: all). On failure nothing is handed back."""
        keys = list(self._windows) if keys is None else list(keys)
        if not keys:
            return []
        started = time.perf_counter()
        tables = {key: rowmod.rows_to_table(self._windows[key].rows, key.partition, self._windows[key].offsets)
                  for key in keys}
        try:
            self._write_durably(tables)
        except OSError:
            self.metrics.flush_errors.inc()
            raise
        for key, table in tables.items():
            for listener in self._listeners:
                try:
                    listener(key, table)
                except Exception:  # a broken observer must not block landing
                    log.exception("listener %r failed for %s", listener, key)
        handles: list[Any] = []
        for key in keys:
            window = self._windows.pop(key)
            handles.extend(window.handles)
        self._buffered -= len(handles)
        self.metrics.landed.inc(len(handles))
        self.metrics.buffered.set(self._buffered)
        self.metrics.flush_seconds.observe(time.perf_counter() - started)
        self._observe_lag()
        return handles

    def _write_durably(self, tables: dict[WindowKey, pa.Table]) -> None:
        """syncfs mode: write every temp file, one syncfs, link them all, one more syncfs (a linked
        file's content is always durable before its name). fsync mode: fsync each temp file as
        it is written, then each changed folder once after the links."""
        staged: list[tuple[Path, Path]] = []
        published: list[Path] = []
        folders = self._unsynced_dirs
        try:
            for key, table in tables.items():
                staged.append(self._write_temp(key, self._windows[key], table))
            if self._syncfs:
                sync_filesystem(self._root)
            failpoints.reach("flush_after_temp_files")
            for tmp, final in staged:
                _link_no_overwrite(tmp, final)
                published.append(final)
                folders.add(final.parent)
                if len(staged) > 1:
                    failpoints.reach("flush_between_links")
            if self._syncfs:
                sync_filesystem(self._root)
                folders.clear()
            for folder in list(folders):
                fsync_dir(folder)
                folders.discard(folder)
        except BaseException:
            for final in published:   # not acked yet: take them back so the retry can publish all
                final.unlink(missing_ok=True)
            raise
        finally:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)

    def _write_temp(self, key: WindowKey, window: _Window, table: pa.Table) -> tuple[Path, Path]:
        """The window's file under its temp name (fsynced in fsync mode). The parents of folders
        made for it wait in _unsynced_dirs until a flush has synced them (a failed flush leaves
        them there)."""
        day = datetime.fromtimestamp(key.start_ms / 1000, tz=timezone.utc).date()
        folder = partition_dir(self.settings.data_dir, key.property_id, day)
        self._unsynced_dirs.update(_make_dirs(folder))
        name = PartName(self.topic, key.partition, min(window.offsets), max(window.offsets), self.epoch)
        final = folder / name.filename()
        tmp = temp_name(final)
        try:
            with open(tmp, "wb") as fh:
                pq.write_table(table, fh, **PART_FILE_OPTIONS)
                fh.flush()
                if not self._syncfs:
                    os.fsync(fh.fileno())
                size = fh.tell()
        except BaseException:
            tmp.unlink(missing_ok=True)   # e.g. the disk ran full halfway through
            raise
        self.metrics.bytes_written.inc(size)
        self.metrics.files_written.inc()
        return tmp, final

    def _observe_lag(self) -> None:
        newest = max((s.watermark_ms for s in self._partitions.values()), default=0)
        if newest:
            self.metrics.event_time_lag.set(time.time() - newest / 1000)

    # ---- rebalances --------------------------------------------------------------------
    def release(self, partitions: Iterable[int]) -> list[Any]:
        """Partitions are being revoked: land their buffered records, forget their state."""
        partitions = set(partitions)
        handles = self.flush([k for k in self._windows if k.partition in partitions])
        for p in partitions:
            self._partitions.pop(p, None)
        self._landed_files = None
        return handles

    def discard_all(self) -> None:
        """Forget every buffer and partition state without landing (nothing of it was acked)."""
        self._windows.clear()
        self._partitions.clear()
        self._buffered = 0
        self._landed_files = None

    def set_epoch(self, epoch: str) -> bool:
        """Follow the topic's current id; True when it changed (the topic was re-created)."""
        if epoch == self.epoch:
            return False
        log.warning("topic %s has a new id %s (was %s): it was re-created", self.topic, epoch, self.epoch)
        self.epoch = epoch
        self._landed_files = None
        return True

    def _resume(self, partition: int, first_offset: int) -> _PartitionState:
        """First record of a partition since assignment: rebuild its dedupe state from landed files.

        The state must be what a worker that never stopped would hold at `first_offset`: the ids
        within the horizon of the watermark reached *before* that offset (estimated from the files
        that lie wholly before it, so never too late), plus every id in files at or after it,
        pinned, because Kafka is about to deliver those messages again.
        """
        state = _PartitionState(DedupeIndex(self.settings.dedupe_horizon_days))
        self._remove_stale_temps(partition)
        files = self._files_of(partition)
        before = [date.fromisoformat(d) for d, _, part in files if part.last_offset < first_offset]
        resume_day = max(before, default=None)
        loaded, oldest = 0, None
        for day_str, path, part in files:
            day = date.fromisoformat(day_str)
            may_repeat = part.last_offset >= first_offset
            # (when resume_day is None every file may repeat, so the subtraction is never reached)
            if may_repeat or (resume_day - day).days <= self.settings.dedupe_horizon_days:
                loaded += self._load_file(state, path, may_repeat, part.last_offset)
                oldest = day if oldest is None else min(oldest, day)
        if oldest is not None:
            state.dedupe.rewind((resume_day or oldest).toordinal() - _EPOCH_ORDINAL)
        log.info("%s[%d]: resuming at offset %d; dedupe state rebuilt from %d landed rows (%d files)",
                 self.topic, partition, first_offset, loaded, len(files))
        self._partitions[partition] = state
        return state

    def _remove_stale_temps(self, partition: int) -> None:
        """Temp files of this partition were left by a flush that crashed before publishing them."""
        for _prop, _day, path, part in iter_part_files(self.settings.data_dir, temp=True):
            if part.topic == self.topic and part.partition == partition:
                log.info("removing %s, left by an interrupted flush", path)
                path.unlink(missing_ok=True)

    def _load_file(self, state: _PartitionState, path: Path, may_repeat: bool, last_offset: int) -> int:
        table = pq.read_table(path, columns=list(rowmod.CONTENT_COLUMNS) + ["source_offset"])
        offsets = table.column("source_offset").to_pylist()
        for row, offset in zip(rowmod.table_to_rows(table), offsets):
            digest = rowmod.row_digest(row)
            ts_ms = row[rowmod.TIMESTAMP_INDEX]
            state.dedupe.add(row[0], digest, offset, ts_ms // DAY_MS, evict=False)
            if may_repeat:
                state.dedupe.pin(row[0], digest, offset, last_offset)
            elif ts_ms > state.watermark_ms:
                state.watermark_ms = ts_ms   # the watermark reached before the resume offset
        return len(offsets)

    def _files_of(self, partition: int) -> list[tuple[str, Path, PartName]]:
        if self._landed_files is None:
            listing: dict[int, list] = defaultdict(list)
            for _prop, day, path, part in iter_part_files(self.settings.data_dir):
                if part.topic == self.topic and part.epoch == self.epoch:
                    listing[part.partition].append((day, path, part))
            self._landed_files = listing
        return self._landed_files.get(partition, [])


def _link_no_overwrite(tmp: Path, final: Path) -> None:
    """Atomic publish that refuses to replace an existing file (a landed file is never rewritten)."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise OSError(f"refusing to overwrite landed file {final}; this indicates a bug or a second "
                      f"writer on the same partition") from None


def _make_dirs(folder: Path) -> list[Path]:
    """Make `folder` and its missing parents; the folders whose entries changed (to fsync)."""
    if folder.is_dir():
        return []
    missing = [p for p in [folder, *folder.parents] if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    return [created.parent for created in missing]
