"""The parquet row layout of a landed outcome, and the conversion from a decoded Avro record.

`property_id` and `date` are not stored in the files: they are the hive partition columns of
the folder path. `context` is flattened into its fields (all null = no context); `features` is
kept as a JSON object text with sorted keys, readable by every engine (`json_extract` in DuckDB,
`from_json` in Spark, `json.loads` in Python). `source_partition`/`source_offset` say which Kafka
message a row came from.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pyarrow as pa

CONTEXT_FIELDS = ("season", "day_of_week", "temperature", "is_holiday", "occupancy_rate",
                  "lead_time", "length_of_stay", "is_refundable")
PRICE_FIELDS = ("final_price", "time_to_book", "comp_p10", "comp_p50", "comp_p90")

CONTENT_SCHEMA = pa.schema(
    [("event_id", pa.string()), ("timestamp", pa.timestamp("ms", tz="UTC")),
     ("quoted_price", pa.float64()), ("accepted", pa.bool_())]
    + [(name, pa.float64()) for name in PRICE_FIELDS]
    + [("season", pa.string()), ("day_of_week", pa.int32()), ("temperature", pa.float64()),
       ("is_holiday", pa.int32()), ("occupancy_rate", pa.float64()), ("lead_time", pa.int32()),
       ("length_of_stay", pa.int32()), ("is_refundable", pa.int32()), ("features", pa.string())]
)
SOURCE_FIELDS = [("source_partition", pa.int32()), ("source_offset", pa.int64())]
ROW_SCHEMA = pa.schema(list(CONTENT_SCHEMA) + SOURCE_FIELDS)
CONTENT_COLUMNS = tuple(CONTENT_SCHEMA.names)
TIMESTAMP_INDEX = CONTENT_COLUMNS.index("timestamp")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MILLI = timedelta(milliseconds=1)


def to_millis(ts: datetime | int) -> int:
    if isinstance(ts, int):
        return ts
    return (ts - _EPOCH) // _MILLI



_FEATURES_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode
_NO_CONTEXT = (None,) * len(CONTEXT_FIELDS)


def record_to_row(record: dict) -> tuple:
    """Content columns of one validated record, in CONTENT_COLUMNS order (timestamp as epoch ms)."""
    get = record.get
    context = get("context")
    features = get("features")
    return (
        record["event_id"], to_millis(record["timestamp"]), float(record["quoted_price"]),
        bool(record["accepted"]),
        *map(get, PRICE_FIELDS),
        *(_NO_CONTEXT if context is None else map(context.get, CONTEXT_FIELDS)),
        None if features is None else _FEATURES_JSON(features),
    )


def row_digest(row: tuple) -> int:
    """Fingerprint of a row's content within this process (the dedupe state never leaves it):
    equal rows give equal digests, before and after landing (a NaN never reaches a row)."""
    return hash(row)


def row_day(row: tuple) -> date:
    return datetime.fromtimestamp(row[TIMESTAMP_INDEX] / 1000, tz=timezone.utc).date()


def rows_to_table(rows: list[tuple], partition: int, offsets: list[int]) -> pa.Table:
    columns = list(zip(*rows)) if rows else [[] for _ in CONTENT_COLUMNS]
    arrays = [pa.array(col, type=f.type) for col, f in zip(columns, CONTENT_SCHEMA)]
    arrays.append(pa.array([partition] * len(rows), type=pa.int32()))
    arrays.append(pa.array(offsets, type=pa.int64()))
    return pa.Table.from_arrays(arrays, schema=ROW_SCHEMA)


def table_to_rows(table: pa.Table) -> list[tuple]:
    """Inverse of rows_to_table for the content columns (used to rebuild dedupe state)."""
    columns = []
    for name in CONTENT_COLUMNS:
        col = table.column(name)
        if name == "timestamp":
            col = col.cast(pa.int64())
        columns.append(col.to_pylist())
    return list(zip(*columns))
