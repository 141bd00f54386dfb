"""A landed store built without Kafka: records go straight into the worker's LandingSink, one
partition per property as the publisher's key does, closed windows flushed every `take_batch`
records as the worker does. Figures 5 and 6 use it when figures 1 and 4 (which leave the
worker-landed stores behind) are not selected, e.g. `BENCH_FIGURES=5,6 make bench`."""
from __future__ import annotations

import zlib
from collections import defaultdict
from pathlib import Path
from typing import Iterable

from prometheus_client import CollectorRegistry

from consumers.landing import LandingSink
from monitoring.metrics import IngestMetrics
from schemas.settings import Settings
from schemas.validation import validate


def build_store(records: Iterable[dict], data_dir: Path, partitions: int = 4) -> int:
    """Land `records` under data_dir; returns the number of records accepted as new."""
    settings = Settings.from_env({}, data_dir=str(data_dir), partitions=partitions)
    sink = LandingSink(settings, "bench-direct", "DIRECT", IngestMetrics(CollectorRegistry()))
    offsets: dict[int, int] = defaultdict(int)
    landed = 0
    for count, record in enumerate(records, 1):
        record = validate(record)
        partition = zlib.crc32(record["property_id"].encode()) % partitions
        landed += sink.accept(partition, offsets[partition], record, None).value == "new"
        offsets[partition] += 1
        if count % settings.take_batch == 0:
            sink.flush_due()
    sink.flush()
    return landed
