"""Fixtures shared by unit and integration tests."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow.parquet as pq
import pytest

from consumers.paths import PartName, partition_dir
from consumers.rows import rows_to_table, to_millis

STORE_END = datetime(2017, 8, 31, tzinfo=timezone.utc)


def synthetic_rows(property_id: str, n: int, days: int, end: datetime, seed: int) -> list[tuple]:
    """Store rows (CONTENT_COLUMNS order) whose acceptance depends on `signal`, lead time and channel."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    lead = rng.integers(0, 300, size=n)
    channel = rng.choice(["direct", "agency", "corporate"], size=n)
    logit = 2.5 * signal - 0.006 * lead + np.where(channel == "direct", 0.8, 0.0)
    accepted = rng.random(n) < 1 / (1 + np.exp(-logit))
    price = np.round(80 + 30 * rng.random(n) + np.where(channel == "corporate", 40, 0), 2)
    offsets = np.sort(rng.integers(0, days * 86400, size=n))
    rows = []
    for i in range(n):
        stamp = end - timedelta(days=days) + timedelta(seconds=int(offsets[i]))
        features = {"signal": float(signal[i]), "channel": str(channel[i]), "adults": float(rng.integers(1, 4))}
        rows.append((f"{property_id}:{seed}:{i}", to_millis(stamp), float(price[i]), bool(accepted[i]),
                     float(price[i]) if accepted[i] else None, None, None, None, None,
                     ["Winter", "Spring", "Summer", "Fall"][stamp.month % 12 // 3], stamp.weekday(), None, None,
                     None, int(lead[i]), int(rng.integers(1, 8)), int(rng.random() < 0.1),
                     json.dumps(features, sort_keys=True, separators=(",", ":"))))
    return rows


def write_rows(data_dir: Path, property_id: str, rows: list[tuple], topic: str = "outcomes") -> None:
    """Land `rows` like the worker does: one part file per property and day."""
    by_day: dict = {}
    for row in rows:
        by_day.setdefault(datetime.fromtimestamp(row[1] / 1000, tz=timezone.utc).date(), []).append(row)
    offset = 0
    for day, day_rows in sorted(by_day.items()):
        folder = partition_dir(data_dir, property_id, day)
        folder.mkdir(parents=True, exist_ok=True)
        offsets = list(range(offset, offset + len(day_rows)))
        name = PartName(topic, 0, offsets[0], offsets[-1], "0").filename()
        pq.write_table(rows_to_table(day_rows, 0, offsets), folder / name)
        offset += len(day_rows)


@pytest.fixture
def outcome_store() -> Callable[..., list[tuple]]:
    """make(data_dir, property_id="city", n=3000, days=60, end=STORE_END, seed=1, duplicates=0)
    lands n synthetic outcomes (plus the first `duplicates` again, in other files) and returns them."""
    def make(data_dir: Path, property_id: str = "city", n: int = 3000, days: int = 60,
             end: datetime = STORE_END, seed: int = 1, duplicates: int = 0) -> list[tuple]:
        rows = synthetic_rows(property_id, n, days, end, seed)
        write_rows(Path(data_dir), property_id, rows, topic=f"outcomes-{seed}")
        if duplicates:
            write_rows(Path(data_dir), property_id, rows[:duplicates], topic=f"resent-{seed}")
        return rows

    return make
