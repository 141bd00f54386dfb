"""A hand-built outcomes store for the storage, compaction and dashboard tests."""
import time
from datetime import datetime, timedelta, timezone

import pyarrow.parquet as pq

from consumers.paths import PartName, partition_dir
from consumers.rows import rows_to_table, to_millis

DAY0 = datetime(2017, 8, 1, tzinfo=timezone.utc)


def row(event_id, day, accepted=True, price=100.0, final=None, comp=False, context=True, hour=12):
    stamp = DAY0 + timedelta(days=day, hours=hour)
    return (event_id, to_millis(stamp), price, accepted, final, None,
            *((90.0, 100.0, 110.0) if comp else (None, None, None)),
            "Summer" if context else None, None, None, None, None, 3 if context else None, None, None, None)


def land(data_dir, prop, day, rows, partition=0, first=0, topic="outcomes", epoch="E1", row_group_size=None):
    """One part file like the worker writes it; returns its path."""
    folder = partition_dir(data_dir, prop, (DAY0 + timedelta(days=day)).date())
    folder.mkdir(parents=True, exist_ok=True)
    offsets = list(range(first, first + len(rows)))
    path = folder / PartName(topic, partition, offsets[0], offsets[-1], epoch).filename()
    pq.write_table(rows_to_table(rows, partition, offsets), path, row_group_size=row_group_size)
    return path


def settled(storage):
    """`storage`, keeping part-file summaries even of files landed just now (its cache's clock runs an
    hour ahead, so they look settled): the tests see the cached path."""
    storage._file_stats.clock = lambda: time.time_ns() + 3600 * 10**9
    return storage
