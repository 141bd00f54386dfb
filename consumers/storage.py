"""OutcomesStorage: the seed's storage operations over the landed, hive-partitioned parquet store.

    <data_dir>/outcomes/property_id=<percent-encoded id>/date=<YYYY-MM-DD>/<part file>.parquet

Used by the worker's HTTP API and by the batch CLI. Reads open one property's folder, only the
date folders in range and only the columns they need (store_scan.py), and see each date folder as
one snapshot even while compaction swaps it. `get_statistics` adds up a summary of each part file
(store_stats.py) and keeps the summaries (store_scan.SummaryCache, by file identity), so a later
call only lists and stats the files. Writes are safe while the landing worker keeps writing: `delete_outcomes` moves
each whole date folder out of the store in one atomic rename (no reader and not the worker sees a
partial partition) and only then deletes it; exports are written under a hidden temp name,
fsynced and renamed.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import partial
from pathlib import Path

import pandas as pd
import pyarrow as pa

from consumers.paths import decode_segment, encode_segment, outcomes_root
from consumers.rows import CONTEXT_FIELDS, ROW_SCHEMA
from consumers.store_files import TRASH, first_per_event_id, remove_empty_dirs, remove_partition, write_parquet_durably
from consumers.store_location import scan_store
from consumers.store_scan import PROPERTY_PREFIX, SummaryCache, date_dirs, property_dir, scan, summarise
from consumers.store_stats import COMP_FIELDS, FileStats, Window, statistics, summarise_file, summarise_table
from schemas.errors import BookloopError

STATS_COLUMNS = ["timestamp", "accepted", "quoted_price", "final_price", *COMP_FIELDS, *CONTEXT_FIELDS]
STATS_CACHE_FILES = 50_000   # part-file summaries an OutcomesStorage keeps (~0.8 KB each: at most ~40 MB)
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


def _with_property(table: pa.Table, property_id: str) -> pa.Table:
    return table.add_column(0, "property_id", pa.array([property_id] * table.num_rows, pa.string()))
