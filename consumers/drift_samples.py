"""The values drift is computed on, from landed outcome tables and from the parquet store.

Features: the numeric columns FIXED_FEATURES (`accepted` as 0/1, so its distribution is the
acceptance rate) and the numeric entries of the `features` JSON map, named `features.<key>`. A
map value that is not a number (text, null, boolean) counts as missing; at most
MAX_MAP_FEATURES keys (alphabetically first) of a table are kept, which bounds label cardinality.

`PropertyHistory` is the worker's bounded memory of one property: per UTC day, the rows of the
landed part files (each part added once), thinned to a uniform random subsample of at most
`day_cap` rows (seeded by the day, so deterministic), and only the days the windows need.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from consumers.paths import decode_segment, encode_segment, outcomes_root
from monitoring.drift import WindowSamples

FIXED_FEATURES = ("quoted_price", "final_price", "time_to_book", "comp_p10", "comp_p50", "comp_p90",
                  "occupancy_rate", "temperature", "lead_time", "length_of_stay", "accepted")
MAP_PREFIX = "features."
MAX_MAP_FEATURES = 32
READ_COLUMNS = list(FIXED_FEATURES) + ["features", "source_partition", "source_offset"]
_DATE_PARTITIONING = ds.partitioning(pa.schema([("date", pa.string())]), flavor="hive")
PartId = tuple[int, int]  # (Kafka partition, first offset): names a landed part file


def table_values(table: pa.Table) -> dict[str, np.ndarray]:
    """Feature name -> float array with one value per row (NaN = missing)."""
    values = {name: table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False)
              for name in FIXED_FEATURES}
    values.update(_map_values(table.column("features").to_pylist()))
    return values


def _map_values(texts: list[str | None]) -> dict[str, np.ndarray]:
    rows = len(texts)
    columns: dict[str, list[float]] = {}
    for row, text in enumerate(texts):
        if not text:
            continue
        for key, value in json.loads(text).items():
            kind = type(value)   # JSON numbers load as int or float (True is a bool)
            if kind is float or kind is int:
                column = columns.get(key)
                if column is None:
                    column = columns[key] = [math.nan] * rows
                column[row] = value
    return {MAP_PREFIX + key: np.array(columns[key], dtype=np.float64)
            for key in sorted(columns)[:MAX_MAP_FEATURES]}


def candidate_features(*windows: WindowSamples) -> list[str]:
    """The fixed features, then the map features of any window, sorted."""
    mapped = sorted({name for w in windows for name in w.values if name.startswith(MAP_PREFIX)})
    return list(FIXED_FEATURES) + mapped[:MAX_MAP_FEATURES]


def part_id(table: pa.Table) -> PartId:
    return (table.column("source_partition")[0].as_py(), pc.min(table.column("source_offset")).as_py())


@dataclass
class _Day:
    rows: int = 0  # landed rows, before thinning
    values: dict[str, np.ndarray] = field(default_factory=dict)
    kept: int = 0
    parts: set[PartId] = field(default_factory=set)
    pending: list[pa.Table] = field(default_factory=list)  # landed parts not turned into values yet
    pending_rows: int = 0


class PropertyHistory:
    """One property's recent days of drift values, bounded by `keep_days` x `day_cap` rows.

    Parts are turned into values (their `features` JSON parsed) only when a window needs the day
    or when the day would go over its cap: a replay closes a window every few hundred events,
    and most of its days leave the kept range before any evaluation looks at them."""

    def __init__(self, day_cap: int, keep_days: int):
        self.day_cap = day_cap
        self.keep_days = keep_days
        self._days: dict[date, _Day] = {}

    @property
    def newest(self) -> date | None:
        return max(self._days, default=None)

    def add(self, day: date, part: PartId, table: pa.Table) -> bool:
        """Add a landed part of `day` unless it was added before; False when it was."""
        slot = self._days.setdefault(day, _Day())
        if part in slot.parts or not table.num_rows:
            return False
        slot.parts.add(part)
        slot.rows += table.num_rows
        slot.pending.append(table.select(READ_COLUMNS))
        slot.pending_rows += table.num_rows
        if slot.kept + slot.pending_rows > self.day_cap:
            self._materialize(day, slot)
        self._prune()
        return True

    def _materialize(self, day: date, slot: _Day) -> None:
        """Turn the day's pending parts into values, thinned to a seeded uniform sample of day_cap."""
        if not slot.pending:
            return
        added = table_values(pa.concat_tables(slot.pending, promote_options="permissive"))
        slot.values = _concat([(slot.kept, slot.values), (slot.pending_rows, added)])
        slot.kept += slot.pending_rows
        slot.pending, slot.pending_rows = [], 0
        if slot.kept > self.day_cap:
            rng = np.random.default_rng(day.toordinal())
            keep = np.sort(rng.choice(slot.kept, self.day_cap, replace=False))
            slot.values = {name: column[keep] for name, column in slot.values.items()}
            slot.kept = self.day_cap

    def _prune(self) -> None:
        oldest = self.newest - timedelta(days=self.keep_days - 1)
        for day in [d for d in self._days if d < oldest]:
            del self._days[day]

    def window(self, start: date, end: date) -> tuple[WindowSamples, int]:
        """The kept values of the days in [start, end), and the landed rows of those days."""
        days = [d for d in sorted(self._days) if start <= d < end]
        for day in days:
            self._materialize(day, self._days[day])
        slots = [self._days[d] for d in days]
        merged = _concat([(d.kept, d.values) for d in slots])
        return WindowSamples(sum(d.kept for d in slots), merged), sum(d.rows for d in slots)


def _concat(pieces: list[tuple[int, dict[str, np.ndarray]]]) -> dict[str, np.ndarray]:
    """Concatenate per-feature arrays; a feature a piece lacks is NaN for that piece's rows."""
    names = sorted({name for _, values in pieces for name in values})
    return {name: np.concatenate([values.get(name, np.full(rows, np.nan)) for rows, values in pieces])
            for name in names}


# ---- the parquet store ------------------------------------------------------------------
def property_dir(data_dir: str | Path, property_id: str) -> Path:
    return outcomes_root(data_dir) / f"property_id={encode_segment(property_id)}"


def store_properties(data_dir: str | Path) -> list[str]:
    root = outcomes_root(data_dir)
    if not root.is_dir():
        return []
    return sorted(decode_segment(p.name[len("property_id="):]) for p in root.iterdir()
                  if p.name.startswith("property_id=") and p.is_dir())


def landed_days(data_dir: str | Path, property_id: str) -> list[date]:
    folder = property_dir(data_dir, property_id)
    if not folder.is_dir():
        return []
    return sorted(date.fromisoformat(p.name[len("date="):]) for p in folder.iterdir()
                  if p.name.startswith("date=") and any(p.glob("*.parquet")))


def _dataset(data_dir: str | Path, property_id: str) -> ds.Dataset:
    return ds.dataset(property_dir(data_dir, property_id), format="parquet", partitioning=_DATE_PARTITIONING)


def _days_filter(start: date, end: date | None) -> ds.Expression:
    expression = ds.field("date") >= start.isoformat()
    return expression if end is None else expression & (ds.field("date") < end.isoformat())


def read_days(data_dir: str | Path, property_id: str, start: date, end: date) -> pa.Table:
    """The drift columns and `date` of a property's rows landed on days [start, end)."""
    return _dataset(data_dir, property_id).to_table(columns=READ_COLUMNS + ["date"],
                                                    filter=_days_filter(start, end))


def iter_parts(data_dir: str | Path, property_id: str, start: date) -> Iterator[tuple[date, pa.Table]]:
    """(day, table) of every landed part file of the property on `start` or later."""
    if not property_dir(data_dir, property_id).is_dir():
        return
    for fragment in _dataset(data_dir, property_id).get_fragments(filter=_days_filter(start, None)):
        day = ds.get_partition_keys(fragment.partition_expression)["date"]
        yield date.fromisoformat(day), fragment.to_table(columns=READ_COLUMNS)


def window_from_table(table: pa.Table) -> WindowSamples:
    return WindowSamples(table.num_rows, table_values(table))
