"""The shipped "Hotel booking demand" dataset as a stream of BookingOutcome records.

One CSV row is one booking; see data/README.md for the column -> event mapping.
"""
from __future__ import annotations

import bisect
import gc
import heapq
import itertools
import math
import os
import random
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from schemas.errors import ConfigError

DEFAULT_DATASET = Path(os.environ.get("BOOKLOOP_DATASET")
                       or Path(__file__).resolve().parent.parent / "data" / "hotel_bookings.csv.gz")

EVENT_ID_PREFIX = "hotel-bookings"
DEFAULT_MAX_LAG = timedelta(days=7)  # the worker's default event-time dedupe horizon
PROPERTY_IDS = {"City Hotel": "city", "Resort Hotel": "resort"}
MONTHS = {name: i for i, name in enumerate(
    ["January", "February", "March", "April", "May", "June", "July", "August",
     "September", "October", "November", "December"], start=1)}
SEASONS = {12: "Winter", 1: "Winter", 2: "Winter", 3: "Spring", 4: "Spring", 5: "Spring",
           6: "Summer", 7: "Summer", 8: "Summer", 9: "Fall", 10: "Fall", 11: "Fall"}
# Not features: the mapped fields themselves and the two columns that record the outcome.
EXCLUDED_FEATURES = frozenset({"hotel", "is_canceled", "adr", "lead_time",
                               "reservation_status", "reservation_status_date"})
_ID_COLUMNS = {"agent": str, "company": str}
_REQUIRED = ["hotel", "is_canceled", "lead_time", "arrival_date_year", "arrival_date_month",
             "arrival_date_day_of_month", "stays_in_weekend_nights", "stays_in_week_nights",
             "deposit_type", "adr"]


def load_outcomes(path: str | Path = DEFAULT_DATASET, limit: int | None = None) -> list[dict]:
    """load_bookings + outcomes_from_bookings; a file that is unreadable or not the dataset (not gzip,
    truncated, not text, not CSV, bad values) is a one-line ConfigError naming the file."""
    try:
        return outcomes_from_bookings(load_bookings(path), limit=limit)
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(message if str(path) in message else f"{path}: {message}") from None
    except (OSError, EOFError, ValueError) as exc:   # BadGzipFile, UnicodeDecodeError, pandas' ParserError, ...
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"cannot read the booking dataset {path}: {reason}") from None


def load_bookings(path: str | Path = DEFAULT_DATASET) -> pd.DataFrame:
    """Read the CSV; "NULL"/"NA"/empty become missing, agent and company stay string ids."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"booking dataset not found at {path} (set BOOKLOOP_DATASET to override)")
    df = pd.read_csv(path, keep_default_na=False, na_values=["NULL", "NA", ""], dtype=_ID_COLUMNS)
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise ConfigError(f"{path} is not the hotel booking dataset: missing columns {missing}")
    unknown = set(df["hotel"].unique()) - set(PROPERTY_IDS)
    if unknown:
        raise ConfigError(f"{path}: unknown hotel names {sorted(map(str, unknown))}")
    return df


def outcomes_from_bookings(df: pd.DataFrame, limit: int | None = None) -> list[dict]:
    """Outcome records sorted by (timestamp, row position); `limit` keeps the earliest ones."""
    if limit is not None and limit < 1:   # a slice [:-1] would keep all but one
        raise ConfigError(f"limit must be at least 1 (None: all bookings), got {limit}")
    arrival = _arrival_dates(df)
    booked = arrival - pd.to_timedelta(df["lead_time"].to_numpy(), unit="D")
    rows = df.index.to_numpy()  # the CSV row position for a frame from load_bookings
    order = np.lexsort((rows, _epoch_seconds(booked)))[:limit]
    df, arrival, booked = df.iloc[order], arrival.iloc[order], booked.iloc[order]
    columns = _outcome_columns(df, arrival, booked)
    with _gc_paused():
        columns["event_id"] = [f"{EVENT_ID_PREFIX}:{row}" for row in rows[order].tolist()]
        columns["features"] = _feature_maps(df, columns["adr_raw"])
        return [_record(dict(zip(columns, values))) for values in zip(*columns.values())]


@contextmanager
def _gc_paused():
    """Building ~500k acyclic dicts triggers many useless full collections (they cost 2/3 of the time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _arrival_dates(df: pd.DataFrame) -> pd.Series:
    months = df["arrival_date_month"].map(MONTHS)
    if months.isna().any():
        bad = sorted(set(df.loc[months.isna(), "arrival_date_month"].astype(str)))
        raise ConfigError(f"unknown arrival_date_month values {bad}")
    parts = pd.DataFrame({"year": df["arrival_date_year"], "month": months,
                          "day": df["arrival_date_day_of_month"]})
    return pd.to_datetime(parts).dt.tz_localize("UTC")


def _outcome_columns(df: pd.DataFrame, arrival: pd.Series, booked: pd.Series) -> dict[str, list]:
    adr = df["adr"].astype(float)
    accepted = df["is_canceled"].to_numpy() == 0
    quoted = adr.clip(lower=0.0)
    return {
        "property_id": df["hotel"].map(PROPERTY_IDS).tolist(),
        "timestamp": _utc_datetimes(booked),
        "quoted_price": quoted.tolist(),
        "adr_raw": _none_where_missing(adr.where(adr < 0)),
        "accepted": accepted.tolist(),
        "final_price": _none_where_missing(quoted.where(accepted)),
        "season": arrival.dt.month.map(SEASONS).tolist(),
        "day_of_week": arrival.dt.day_of_week.tolist(),
        "lead_time": df["lead_time"].astype(int).tolist(),
        "length_of_stay": (df["stays_in_weekend_nights"] + df["stays_in_week_nights"]).astype(int).tolist(),
        "is_refundable": (df["deposit_type"] == "Refundable").astype(int).tolist(),
    }


def _epoch_seconds(stamps: pd.Series) -> np.ndarray:
    return stamps.dt.as_unit("s").astype("int64").to_numpy()


def _utc_datetimes(stamps: pd.Series) -> list[datetime]:
    """Aware UTC datetimes; each of the ~1,000 distinct dates is converted once."""
    unique, inverse = np.unique(_epoch_seconds(stamps), return_inverse=True)
    converted = [datetime.fromtimestamp(int(v), tz=timezone.utc) for v in unique]
    return [converted[i] for i in inverse.tolist()]


def _feature_maps(df: pd.DataFrame, adr_raw: list[float | None]) -> list[dict]:
    """Every remaining column (numbers as float, text as str, missing as None), plus adr_raw if < 0."""
    names = [name for name in df.columns if name not in EXCLUDED_FEATURES]
    columns = [_none_where_missing(df[name].astype(float if pd.api.types.is_numeric_dtype(df[name]) else str))
               for name in names]
    maps = [dict(zip(names, values)) for values in zip(*columns)]
    for features, raw in zip(maps, adr_raw):
        if raw is not None:  # the raw adr was negative; quoted_price is clamped to 0
            features["adr_raw"] = raw
    return maps


def _none_where_missing(column: pd.Series) -> list:
    return column.astype(object).where(column.notna(), None).tolist()


def _record(row: dict) -> dict:
    return {
        "event_id": row["event_id"],
        "property_id": row["property_id"],
        "timestamp": row["timestamp"],
        "quoted_price": row["quoted_price"],
        "accepted": row["accepted"],
        "final_price": row["final_price"],
        "time_to_book": None,
        "comp_p10": None, "comp_p50": None, "comp_p90": None,
        "context": {"season": row["season"], "day_of_week": row["day_of_week"],
                    "temperature": None, "is_holiday": None, "occupancy_rate": None,
                    "lead_time": row["lead_time"], "length_of_stay": row["length_of_stay"],
                    "is_refundable": row["is_refundable"]},
        "features": row["features"],
    }


def plan_resends(outcomes: list[dict], fraction: float, seed: int = 7, max_gap: int = 200,
                 max_lag: timedelta = DEFAULT_MAX_LAG) -> list[dict]:
    """Send order: every outcome once plus round(fraction*n) random ones again (the same dict).

    A re-send comes 1..max_gap positions after its original, and before any outcome that would
    lift the newest timestamp sent so far more than `max_lag` past its own, so it stays inside
    the worker's event-time dedupe horizon even where bookings are sparse (2013-2014, where 200
    positions span months). Re-sends are emitted earliest-deadline-first: position deadlines are
    distinct, so none is ever missed. Deterministic for a seed.
    """
    _check_resend_arguments(fraction, max_gap)
    rng = random.Random(seed)
    chosen = set(rng.sample(range(len(outcomes)), round(fraction * len(outcomes))))
    lag_limits = _lag_limits(outcomes, max_lag)
    queue = _ResendQueue()
    order: list[dict] = []
    index = 0
    while index < len(outcomes) or queue:
        resend = queue.pop_due(len(order), index if index < len(outcomes) else math.inf)
        if resend is not None:
            order.append(resend)
            continue
        order.append(outcomes[index])
        if index in chosen:
            position = len(order) - 1
            queue.push(outcomes[index], target=position + rng.randint(1, max_gap),
                       deadline=position + max_gap, lag_limit=lag_limits[index])
        index += 1
    return order


def _check_resend_arguments(fraction: float, max_gap: int) -> None:
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"resend fraction must be within [0, 1], got {fraction}")
    if max_gap < 1:
        raise ConfigError(f"max_gap must be >= 1, got {max_gap}")


def _lag_limits(outcomes: list[dict], max_lag: timedelta) -> list[int]:
    """For each outcome: the index of the first outcome after which the newest timestamp sent
    exceeds its own by more than `max_lag` (its re-send must go out before that one)."""
    newest = list(itertools.accumulate((o["timestamp"] for o in outcomes), max))
    return [bisect.bisect_right(newest, o["timestamp"] + max_lag) for o in outcomes]


class _ResendQueue:
    """Pending re-sends; one is due once its random target position is reached or its lag
    limit is the next original. Due ones leave in order of their position deadline."""

    def __init__(self):
        self._items: dict[int, tuple[int, dict]] = {}  # seq -> (deadline, outcome)
        self._by_target: list[tuple[int, int]] = []
        self._by_lag_limit: list[tuple[float, int]] = []
        self._due: list[tuple[int, int]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._items)

    def push(self, outcome: dict, target: int, deadline: int, lag_limit: int) -> None:
        seq = next(self._seq)
        self._items[seq] = (deadline, outcome)
        heapq.heappush(self._by_target, (target, seq))
        heapq.heappush(self._by_lag_limit, (lag_limit, seq))

    def pop_due(self, position: int, next_original: float) -> dict | None:
        self._release(self._by_target, position)
        self._release(self._by_lag_limit, next_original)
        while self._due:
            _, seq = heapq.heappop(self._due)
            if seq in self._items:  # an item can be released by both heaps
                return self._items.pop(seq)[1]
        return None

    def _release(self, heap: list, bound: float) -> None:
        while heap and heap[0][0] <= bound:
            _, seq = heapq.heappop(heap)
            if seq in self._items:
                heapq.heappush(self._due, (self._items[seq][0], seq))
