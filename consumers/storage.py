"""OutcomesStorage: the seed's storage operations over the landed, hive-partitioned parquet store.

    <data_dir>/outcomes/property_id=<percent-encoded id>/date=<YYYY-MM-DD>/<part file>.parquet

Used by the worker's HTTP API and by the batch CLI. Reads open one property's folder, only the
date folders in range and only the columns they need (store_scan.py), and see each date folder as
one snapshot even while compaction swaps it. `get_statistics` adds up a summary of each part file
(FileStats: counts, null counts, per-chunk sums; from the file's footer and four decoded columns
where the footer suffices) and keeps the summaries (store_scan.SummaryCache, by file identity),
so a later call only lists and stats the files; its figures are those over the concatenated rows,
to the last bit. Writes are safe while the landing worker keeps writing: `delete_outcomes` moves
each whole date folder out of the store in one atomic rename (no reader and not the worker sees a
partial partition) and only then deletes it; exports are written under a hidden temp name,
fsynced and renamed.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from functools import partial
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from consumers.paths import decode_segment, encode_segment, outcomes_root
from consumers.rows import CONTEXT_FIELDS, ROW_SCHEMA
from consumers.store_files import TRASH, first_per_event_id, remove_empty_dirs, remove_partition, write_parquet_durably
from consumers.store_location import scan_store
from consumers.store_scan import PROPERTY_PREFIX, SummaryCache, date_dirs, property_dir, scan, summarise
from schemas.errors import BookloopError

COMP_FIELDS = ("comp_p10", "comp_p50", "comp_p90")
STATS_COLUMNS = ["timestamp", "accepted", "quoted_price", "final_price", *COMP_FIELDS, *CONTEXT_FIELDS]
RECENT_DAYS = 7
STATS_CACHE_FILES = 50_000   # part-file summaries an OutcomesStorage keeps (~0.8 KB each: at most ~40 MB)
_DECODED = ["timestamp", "accepted", "quoted_price", "final_price"]   # the rest comes from footers if it can
_MS = pa.timestamp("ms", "UTC")
_LANDING_ORDER = [("date", "ascending"), ("source_partition", "ascending"), ("source_offset", "ascending")]


class UnknownProperty(BookloopError):
    """No outcomes are stored for this property."""


def parse_as_of(text: str) -> date | datetime:
    """`YYYY-MM-DD` or an ISO time with a timezone (e.g. 2017-08-31T12:00:00Z); ValueError otherwise."""
    if len(text) == 10:
        return date.fromisoformat(text)
    moment = datetime.fromisoformat(text)
    if moment.utcoffset() is None:
        raise ValueError(f"{text!r} has no timezone")
    return moment


def as_of_instant(as_of: date | datetime | None) -> datetime:
    """`as_of` as an aware instant: a date means the end of that day (UTC); None means now."""
    if as_of is None:
        return datetime.now(timezone.utc)
    if isinstance(as_of, datetime):
        return as_of if as_of.tzinfo else as_of.replace(tzinfo=timezone.utc)
    return datetime(as_of.year, as_of.month, as_of.day, tzinfo=timezone.utc) + timedelta(days=1)


class OutcomesStorage:
    def __init__(self, data_dir: str | Path, store_uri: str = ""):
        self.data_dir = Path(data_dir)
        self.store_uri = store_uri   # set: get_statistics reads this copy of the store (path or URI)
        self._file_stats: SummaryCache[FileStats] = SummaryCache(STATS_CACHE_FILES)

    def list_properties(self) -> list[str]:
        """Properties with at least one date partition, sorted."""
        root = outcomes_root(self.data_dir)
        if not root.is_dir():
            return []
        found = [decode_segment(p.name[len(PROPERTY_PREFIX):]) for p in root.iterdir()
                 if p.name.startswith(PROPERTY_PREFIX) and date_dirs(p)]
        return sorted(found)

    def get_outcomes(self, property_id: str, start_date: date | None = None, end_date: date | None = None,
                     limit: int | None = None) -> pd.DataFrame:
        """Stored rows of the property with start_date <= event date <= end_date (both optional,
        inclusive), oldest first, at most `limit` of them; empty when there are none."""
        found = scan(property_dir(self.data_dir, property_id), None, start_date, end_date)
        if found is None:
            return pd.DataFrame(columns=["property_id", *ROW_SCHEMA.names])
        table = found.table.sort_by([("timestamp", "ascending"), *_LANDING_ORDER[1:]]).drop_columns(["date"])
        if limit is not None:
            table = table.slice(0, limit)
        return _with_property(table, property_id).to_pandas()

    def get_statistics(self, property_id: str, as_of: date | datetime | None = None) -> dict:
        """The seed's stats; "recent" means the RECENT_DAYS before `as_of` (default now)."""
        window = Window.before(as_of_instant(as_of))
        if self.store_uri:
            found = scan_store(self.store_uri, property_id, STATS_COLUMNS)
            files, size = ([], 0) if found is None else ([summarise_table(found.table, window)], found.bytes)
        else:
            files, size = summarise(property_dir(self.data_dir, property_id), partial(summarise_file, window=window),
                                    self._file_stats, lambda stats: stats.recent_in(window) is not None) or ([], 0)
        return statistics(files, size, window)

    def export_for_training(self, property_id: str, start_date: date | None = None,
                            output: str | Path | None = None) -> Path:
        """One parquet file of the property's rows from `start_date` on, one row per event_id
        (the first landed wins); written atomically. Default path: <data_dir>/training/..."""
        found = scan(property_dir(self.data_dir, property_id), None, start_date)
        if found is None or found.table.num_rows == 0:
            raise UnknownProperty(f"no outcomes stored for property {property_id!r}"
                                  + (f" from {start_date}" if start_date else ""))
        table = _with_property(first_per_event_id(found.table.sort_by(_LANDING_ORDER)), property_id)
        path = Path(output) if output else self._export_path(property_id, start_date)
        write_parquet_durably(table, path)
        return path

    def delete_outcomes(self, property_id: str | None, before_date: date) -> dict:
        """Remove every date partition before `before_date` (of one property, or all when None),
        each in one atomic move out of the store. Returns {"partitions": n, "rows": m}."""
        properties = self.list_properties() if property_id is None else [property_id]
        removed = {"partitions": 0, "rows": 0}
        for prop in properties:
            for day, folder in sorted(date_dirs(property_dir(self.data_dir, prop)).items()):
                if day < before_date:
                    removed["rows"] += remove_partition(self.data_dir, folder)
                    removed["partitions"] += 1
        remove_empty_dirs(self.data_dir / TRASH)
        return removed

    def _export_path(self, property_id: str, start_date: date | None) -> Path:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        since = start_date.isoformat() if start_date else "all"
        return self.data_dir / "training" / encode_segment(property_id) / f"outcomes_from_{since}_{stamp}.parquet"


@dataclass(frozen=True)
class Window:
    """[start, end) in epoch milliseconds (the stored timestamps' unit): the RECENT_DAYS before `end`."""
    start: int
    end: int

    @classmethod
    def before(cls, end: datetime) -> "Window":
        return cls(pa.scalar(end - timedelta(days=RECENT_DAYS), _MS).value, pa.scalar(end, _MS).value)


@dataclass(frozen=True, slots=True)
class FileStats:
    """What get_statistics needs of one part file (or one table). The price sums are kept per chunk,
    so that adding them up in order repeats pc.mean over the concatenated columns to the last bit."""
    rows: int
    stamped: int                   # rows with a timestamp
    first: int | None              # earliest timestamp, epoch milliseconds
    last: int | None
    accepted: int
    decided: int                   # rows with `accepted` set
    quoted: tuple[float, ...]      # sum of quoted_price of each chunk
    quoted_n: int                  # quoted prices set
    final: tuple[float, ...]
    final_n: int
    missing_comp: int              # rows missing any competitor band
    missing_context: int           # rows missing every context field
    recent: tuple[Window, int, int, int] | None = None   # counted rows, accepted, decided in a window it straddles

    def recent_in(self, window: Window) -> tuple[int, int, int] | None:
        """(rows, accepted, decided) of the file in `window`; None when this summary cannot tell."""
        if self.first is None or self.last < window.start or self.first >= window.end:
            return 0, 0, 0
        if self.stamped == self.rows and window.start <= self.first and self.last < window.end:
            return self.rows, self.accepted, self.decided
        if self.recent is not None and self.recent[0] == window:
            return self.recent[1:]
        return None


def summarise_file(parquet: pq.ParquetFile, window: Window) -> FileStats:
    """FileStats of one part file, decoding the competitor and context columns only when the
    footer's null counts cannot tell how many rows miss them."""
    missing_comp, missing_context = _footer_missing(parquet.metadata)
    columns = [*_DECODED, *(COMP_FIELDS if missing_comp is None else ()),
               *(CONTEXT_FIELDS if missing_context is None else ())]
    table = parquet.read(columns=columns, use_threads=False)   # small files: Arrow's pool costs more than it saves
    return summarise_table(table, window, missing_comp, missing_context)


def summarise_table(table: pa.Table, window: Window, missing_comp: int | None = None,
                    missing_context: int | None = None) -> FileStats:
    stamps, accepted = table.column("timestamp"), table.column("accepted")
    if stamps.type != _MS:
        stamps = stamps.cast(_MS)
    low, high = pc.min_max(stamps).values()
    quoted, final = table.column("quoted_price"), table.column("final_price")
    stats = FileStats(
        table.num_rows, len(stamps) - stamps.null_count, low.value, high.value,
        pc.sum(accepted).as_py() or 0, len(accepted) - accepted.null_count,
        chunk_sums(quoted), len(quoted) - quoted.null_count, chunk_sums(final), len(final) - final.null_count,
        _missing_comp(table) if missing_comp is None else missing_comp,
        _missing_context(table) if missing_context is None else missing_context)
    if stats.recent_in(window) is not None:
        return stats
    start, end = pa.scalar(window.start, _MS), pa.scalar(window.end, _MS)
    inside = pc.and_(pc.greater_equal(stamps, start), pc.less(stamps, end))
    recent = accepted.filter(inside)
    return replace(stats, recent=(window, len(recent), pc.sum(recent).as_py() or 0, len(recent) - recent.null_count))


def statistics(files: list[FileStats], size: int, window: Window) -> dict:
    """The seed's stats over the summaries of a property's files (in landing order)."""
    rows = sum(f.rows for f in files)
    if rows == 0:
        return {"exists": False, "total_records": 0}
    stamped = [f for f in files if f.first is not None]
    recent = [f.recent_in(window) for f in files]   # each file that straddles `window` was counted in it
    recent_rows = sum(r[0] for r in recent)
    return {
        "exists": True, "total_records": rows,
        "date_range": {"min": _iso(min(f.first for f in stamped)), "max": _iso(max(f.last for f in stamped))},
        "acceptance_rate": _rate(sum(f.accepted for f in files), sum(f.decided for f in files)),
        "avg_quoted_price": _mean([s for f in files for s in f.quoted], sum(f.quoted_n for f in files)),
        "avg_final_price": _mean([s for f in files for s in f.final], sum(f.final_n for f in files)),
        "file_size_mb": round(size / 2**20, 2),
        "data_quality": {"missing_final_price": rows - sum(f.final_n for f in files),
                         "missing_comp_bands": sum(f.missing_comp for f in files),
                         "missing_context": sum(f.missing_context for f in files)},
        "recent_activity": {"last_7_days": recent_rows,
                            "acceptance_rate_7d": _rate(sum(r[1] for r in recent), sum(r[2] for r in recent))
                            if recent_rows else None},
    }


def _with_property(table: pa.Table, property_id: str) -> pa.Table:
    return table.add_column(0, "property_id", pa.array([property_id] * table.num_rows, pa.string()))


def _iso(millis: int) -> str:
    text = pa.scalar(millis, _MS).as_py().astimezone(timezone.utc).isoformat(timespec="milliseconds")
    return text.replace(".000+00:00", "Z").replace("+00:00", "Z")


def _rate(accepted: int, decided: int) -> float | None:
    return None if decided == 0 else round(accepted / decided, 4)   # pc.mean of 0/1 floats: exactly this


def _mean(chunk_sums: list[float], count: int) -> float | None:
    mean = summed_mean(chunk_sums, count)
    return None if mean is None else round(mean, 2)


def summed_mean(chunk_sums: list[float], count: int) -> float | None:
    """pc.mean of a chunked column from its chunks' sums: added up in order, divided by the count."""
    total = 0.0
    for chunk_sum in chunk_sums:
        total += chunk_sum
    return None if count == 0 else total / count


def chunk_sums(values: pa.ChunkedArray) -> tuple[float, ...]:
    return tuple(pc.sum(chunk).as_py() or 0.0 for chunk in values.chunks)


def _missing_comp(table: pa.Table) -> int:
    any_comp = pc.is_null(table.column(COMP_FIELDS[0]))
    for name in COMP_FIELDS[1:]:
        any_comp = pc.or_(any_comp, pc.is_null(table.column(name)))
    return pc.sum(any_comp).as_py() or 0


def _missing_context(table: pa.Table) -> int:
    all_context = pc.is_null(table.column(CONTEXT_FIELDS[0]))
    for name in CONTEXT_FIELDS[1:]:
        all_context = pc.and_(all_context, pc.is_null(table.column(name)))
    return pc.sum(all_context).as_py() or 0


def _footer_missing(meta: pq.FileMetaData) -> tuple[int | None, int | None]:
    """(rows missing any competitor band, rows missing every context field) as far as the footer's
    null counts tell (a column without nulls, or with nothing else, decides); None: count the rows."""
    rows, names = meta.num_rows, meta.schema.names
    comp = [_null_count(meta, names, name) for name in COMP_FIELDS]
    missing_comp = rows if rows in comp else 0 if all(nulls == 0 for nulls in comp) else None
    context = []
    for name in CONTEXT_FIELDS:
        nulls = _null_count(meta, names, name)
        if nulls == 0:
            return missing_comp, 0
        context.append(nulls)
    return missing_comp, rows if all(nulls == rows for nulls in context) else None


def _null_count(meta: pq.FileMetaData, names: list[str], name: str) -> int | None:
    if name not in names:
        return None
    index, total = names.index(name), 0
    for group in range(meta.num_row_groups):
        stats = meta.row_group(group).column(index).statistics
        if stats is None or not stats.has_null_count:
            return None
        total += stats.null_count
    return total
