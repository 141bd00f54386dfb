"""Replay the hotel bookings dataset onto the outcomes topic, in booking-time order."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from tqdm import tqdm

from producers.publisher import OutcomePublisher
from producers.replay_mapping import DEFAULT_DATASET, load_outcomes, plan_resends
from producers.topics import ensure_topics, probe
from schemas.errors import ConfigError
from schemas.settings import Settings


@dataclass
class ReplayReport:
    sent: int
    unique: int
    resent: int
    seconds: float
    per_property: dict[str, int] = field(default_factory=dict)


def replay_dataset(settings: Settings, path: str | Path | None = None, limit: int | None = None,
                   rate: float | None = None, resend_fraction: float = 0.0,
                   create_topics: bool = True, publisher: OutcomePublisher | None = None) -> ReplayReport:
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise ConfigError(f"rate must be a finite number of events per second > 0 (None: unlimited), got {rate}")
    outcomes = load_outcomes(path or DEFAULT_DATASET, limit=limit)
    # a re-send is a retry: it follows its original within the worker's dedupe horizon
    order = plan_resends(outcomes, resend_fraction, max_lag=timedelta(days=settings.dedupe_horizon_days))
    probe(settings)   # fail fast and clearly when Kafka is not there
    if create_topics:
        ensure_topics(settings)
    started = time.monotonic()
    own = publisher is None
    publisher = publisher or OutcomePublisher(settings)
    try:
        for i, record in enumerate(tqdm(order, desc="replay", unit="ev", disable=None)):
            publisher.publish(record)
            if rate:
                _pace(started, i + 1, rate)
        publisher.flush(settings.delivery_timeout_seconds)
    finally:
        if own:
            publisher.close()
    per_property: dict[str, int] = {}
    for record in outcomes:
        per_property[record["property_id"]] = per_property.get(record["property_id"], 0) + 1
    return ReplayReport(sent=len(order), unique=len(outcomes), resent=len(order) - len(outcomes),
                        seconds=time.monotonic() - started, per_property=per_property)


def _pace(started: float, sent: int, rate: float) -> None:
    ahead = sent / rate - (time.monotonic() - started)
    if ahead > 0:
        time.sleep(ahead)
