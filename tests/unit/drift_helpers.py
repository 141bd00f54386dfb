"""For the drift tests: synthetic outcomes landed through the real LandingSink, and PSI longhand."""
from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from typing import Callable, Iterable

import numpy as np
from prometheus_client import CollectorRegistry

from consumers.landing import LandingSink
from monitoring.drift import EMPTY_BIN_SHARE
from monitoring.metrics import IngestMetrics
from schemas.settings import Settings

DAY0 = date(2016, 6, 1)


def outcome(i: int, prop: str, day: date, rng: np.random.Generator, price_factor: float = 1.0) -> dict:
    price = float(rng.normal(100, 15)) * price_factor
    accepted = bool(rng.random() < 0.6)
    return {"event_id": f"{prop}-{i}", "property_id": prop,
            "timestamp": datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(minutes=i % 1440),
            "quoted_price": max(price, 0.0), "accepted": accepted, "final_price": price if accepted else None,
            "time_to_book": None, "comp_p10": None, "comp_p50": None, "comp_p90": None,
            "context": {"season": "Summer", "day_of_week": day.weekday(), "temperature": None, "is_holiday": None,
                        "occupancy_rate": None, "lead_time": int(rng.integers(0, 60)),
                        "length_of_stay": int(rng.integers(1, 8)), "is_refundable": 0},
            "features": {"adults": float(rng.integers(1, 4)), "country": "PRT", "flag": True,
                         "children": None if i % 10 == 0 else float(rng.integers(0, 2))}}


class Lander:
    """Lands days of outcomes for properties (one Kafka partition each) and tells listeners."""

    def __init__(self, settings: Settings, listeners: Iterable[Callable] = (), seed: int = 0):
        self.sink = LandingSink(settings, "outcomes", "0", IngestMetrics(CollectorRegistry()))
        for listener in listeners:
            self.sink.add_listener(listener)
        self.rng = np.random.default_rng(seed)
        self.offsets: dict[int, int] = {}
        self.count = 0

    def land(self, prop: str, partition: int, days: Iterable[date], per_day: int, price_factor: float = 1.0) -> None:
        for day in days:
            for _ in range(per_day):
                offset = self.offsets.get(partition, 0)
                self.offsets[partition] = offset + 1
                self.count += 1
                self.sink.accept(partition, offset, outcome(self.count, prop, day, self.rng, price_factor), None)
            self.sink.flush()


def day_range(first: int, last: int) -> list[date]:
    """DAY0 + first .. DAY0 + last, inclusive."""
    return [DAY0 + timedelta(days=d) for d in range(first, last + 1)]


def reference_psi(reference, current, bins=10):
    """PSI written out longhand: quantile cut points, right-closed bins, shares floored at 1e-4."""
    cuts = sorted({float(np.quantile(reference, i / bins)) for i in range(1, bins)})

    def shares(values):
        counts = [0] * (len(cuts) + 1)
        for value in values:
            index = 0
            while index < len(cuts) and value > cuts[index]:
                index += 1
            counts[index] += 1
        return [max(count / len(values), EMPTY_BIN_SHARE) for count in counts]

    return sum((c - r) * math.log(c / r) for r, c in zip(shares(reference), shares(current)))
