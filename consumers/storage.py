"""OutcomesStorage: the seed's storage operations over the landed, hive-partitioned parquet store.

    <data_dir>/outcomes/property_id=<percent-encoded id>/date=<YYYY-MM-DD>/<part file>.parquet

Used by the worker's HTTP API and by the batch CLI. Reads open one property's folder, only the
date folders in range and only the columns they need (store_scan.py), and see each date folder as
one snapshot even while compaction swaps it. Writes are safe while the landing worker keeps
writing: `delete_outcomes` moves each whole date folder out of the store in one atomic rename
(no reader and not the worker sees a partial partition) and only then deletes it; exports are
written under a hidden temp name, fsynced and renamed.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from consumers.paths import decode_segment, encode_segment, outcomes_root
from consumers.rows import CONTEXT_FIELDS, ROW_SCHEMA
from consumers.store_files import TRASH, first_per_event_id, remove_empty_dirs, remove_partition, write_parquet_durably
from consumers.store_location import scan_store
from consumers.store_scan import PROPERTY_PREFIX, date_dirs, property_dir, scan
from schemas.errors import BookloopError

COMP_FIELDS = ("comp_p10", "comp_p50", "comp_p90")
STATS_COLUMNS = ["timestamp", "accepted", "quoted_price", "final_price", *COMP_FIELDS, *CONTEXT_FIELDS]
RECENT_DAYS = 7
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
        if self.store_uri:
            found = scan_store(self.store_uri, property_id, STATS_COLUMNS)
        else:
            found = scan(property_dir(self.data_dir, property_id), STATS_COLUMNS)
        if found is None or found.table.num_rows == 0:
            return {"exists": False, "total_records": 0}
        table, end = found.table, as_of_instant(as_of)
        stamps = table.column("timestamp")
        recent = pc.and_(pc.greater_equal(stamps, pa.scalar(end - timedelta(days=RECENT_DAYS), stamps.type)),
                         pc.less(stamps, pa.scalar(end, stamps.type)))
        recent_accepted = table.column("accepted").filter(recent)
        low, high = pc.min_max(stamps).values()
        return {
            "exists": True, "total_records": table.num_rows,
            "date_range": {"min": _iso(low.as_py()), "max": _iso(high.as_py())},
            "acceptance_rate": _rate(table.column("accepted")),
            "avg_quoted_price": _mean(table.column("quoted_price")),
            "avg_final_price": _mean(table.column("final_price")),
            "file_size_mb": round(found.bytes / 2**20, 2),
            "data_quality": _quality(table),
            "recent_activity": {"last_7_days": len(recent_accepted), "acceptance_rate_7d": _rate(recent_accepted)},
        }

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


def _iso(moment: datetime) -> str:
    text = moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")
    return text.replace(".000+00:00", "Z").replace("+00:00", "Z")


def _rate(accepted: pa.ChunkedArray | pa.Array) -> float | None:
    return None if len(accepted) == 0 else round(pc.mean(accepted.cast(pa.float64())).as_py(), 4)


def _mean(values: pa.ChunkedArray) -> float | None:
    mean = pc.mean(values).as_py()
    return None if mean is None else round(mean, 2)


def _quality(table: pa.Table) -> dict:
    def nulls(name: str) -> pa.ChunkedArray:
        return pc.is_null(table.column(name))

    any_comp = nulls(COMP_FIELDS[0])
    for name in COMP_FIELDS[1:]:
        any_comp = pc.or_(any_comp, nulls(name))
    all_context = nulls(CONTEXT_FIELDS[0])
    for name in CONTEXT_FIELDS[1:]:
        all_context = pc.and_(all_context, nulls(name))
    return {"missing_final_price": table.column("final_price").null_count,
            "missing_comp_bands": pc.sum(any_comp).as_py() or 0,
            "missing_context": pc.sum(all_context).as_py() or 0}
