"""Drift of a property's landed outcomes over the parquet store (`bookloop drift`).

Reads the reference and current windows (see monitoring/drift.py) from the parquet store with
partition pruning and column projection, evaluates them with the same functions as the worker,
for the reports in batch/drift_report.py and the command in batch/drift_command.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Sequence

import pyarrow.compute as pc

from consumers.drift_samples import (MAP_PREFIX, candidate_features, landed_days, read_days,
                                     store_properties, window_from_table)
from monitoring.drift import DriftResult, DriftWindows, Thresholds, WindowSamples, evaluate, present_features
from schemas.errors import BookloopError
from schemas.settings import Settings


class DriftInputError(BookloopError):
    """The drift command cannot run on what it was given (unknown property or feature, no data)."""


@dataclass(frozen=True)
class PropertyDrift:
    property_id: str
    windows: DriftWindows
    reference: WindowSamples
    current: WindowSamples
    result: DriftResult


def drift_for_property(settings: Settings, property_id: str, features: Sequence[str] = (),
                       as_of: date | None = None, require_data: bool = True) -> PropertyDrift:
    days = landed_days(settings.data_dir, property_id)
    if not days:
        known = ", ".join(store_properties(settings.data_dir)) or "none"
        raise DriftInputError(f"unknown property {property_id!r}: no landed data under "
                              f"{settings.data_dir} (properties there: {known})")
    windows = DriftWindows.as_of(as_of or days[-1], settings.drift_reference_days, settings.drift_current_days)
    table = read_days(settings.data_dir, property_id, windows.reference_start, windows.current_end)
    in_current = pc.greater_equal(table.column("date"), windows.current_start.isoformat())
    reference = window_from_table(table.filter(pc.invert(in_current)))
    current = window_from_table(table.filter(in_current))
    if require_data and not table.num_rows:
        raise DriftInputError(f"no data for {property_id!r} from {windows.reference_start} to "
                              f"{windows.last_day} (it has data from {days[0]} to {days[-1]}); "
                              "pick another --as-of")
    names = _features(property_id, features, reference, current)
    result = evaluate(names, reference, current, Thresholds.from_settings(settings))
    return PropertyDrift(property_id, windows, reference, current, result)


def _features(property_id: str, requested: Sequence[str], reference: WindowSamples,
              current: WindowSamples) -> list[str]:
    known = candidate_features(reference, current)
    if not requested:
        return present_features(known, reference, current)
    chosen = []
    for name in requested:
        if name not in known and MAP_PREFIX + name in known:
            name = MAP_PREFIX + name
        if name not in known:
            raise DriftInputError(f"unknown feature {name!r} for {property_id!r}; known: {', '.join(known)}")
        chosen.append(name)
    return chosen


def drift_for(settings: Settings, property_id: str | None, features: Sequence[str],
              as_of: date | None) -> list[PropertyDrift]:
    """One property, or every property in the store when `property_id` is None."""
    if property_id:
        return [drift_for_property(settings, property_id, features, as_of)]
    properties = store_properties(settings.data_dir)
    if not properties:
        raise DriftInputError(f"no properties in the store under {settings.data_dir}")
    return [drift_for_property(settings, p, features, as_of, require_data=False) for p in properties]
