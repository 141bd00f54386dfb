"""The real replay's records, and the 10x data set derived from them (re-keyed, shifted, 20 properties)."""
from __future__ import annotations

import functools
import heapq
from datetime import timedelta
from typing import Iterator

from producers.replay_mapping import DEFAULT_DATASET, load_bookings, outcomes_from_bookings, plan_resends

COPIES = 10   # x10: ten copies of the two hotels = 20 properties


@functools.cache
def real_outcomes() -> tuple[dict, ...]:
    """The 119,390 real bookings as outcome records, in booking-time order (built once)."""
    return tuple(outcomes_from_bookings(load_bookings(DEFAULT_DATASET)))


def real_replay(resend_fraction: float = 0.05) -> list[dict]:
    """The replay order `bookloop replay` publishes (5 % re-sent within the dedupe horizon)."""
    return plan_resends(list(real_outcomes()), resend_fraction)


def _copy(record: dict, k: int) -> dict:
    return {**record, "event_id": f"bench-x{k}:{record['event_id']}",
            "property_id": f"{record['property_id']}-{k}",
            "timestamp": record["timestamp"] + timedelta(days=k)}


def _copies(k: int) -> Iterator[dict]:
    return (_copy(record, k) for record in real_outcomes())


def tenfold_outcomes() -> Iterator[dict]:
    """10 copies of the real data, copy k with new event ids, dates shifted by k days and
    properties `<hotel>-k`, merged lazily into one booking-time order (never all in memory)."""
    return heapq.merge(*(_copies(k) for k in range(COPIES)), key=lambda r: r["timestamp"])


def tenfold_count() -> int:
    return COPIES * len(real_outcomes())
