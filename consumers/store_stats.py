"""get_statistics' arithmetic: a summary of each part file (FileStats: counts, null counts, per-chunk
sums; from the file's footer and four decoded columns where the footer suffices), and the seed's
stats over those summaries, equal to the figures over the concatenated rows to the last bit."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from consumers.rows import CONTEXT_FIELDS

COMP_FIELDS = ("comp_p10", "comp_p50", "comp_p90")
RECENT_DAYS = 7
_DECODED = ["timestamp", "accepted", "quoted_price", "final_price"]   # the rest comes from footers if it can
_MS = pa.timestamp("ms", "UTC")


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
