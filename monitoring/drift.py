"""Drift math as pure functions: two-sample KS and PSI per feature, and the retrain decision.

The worker (consumers/drift_tracker.py) and the batch CLI (batch/drift.py) both call `evaluate`,
so a property's numbers are the same wherever they are computed.

Windows are whole UTC days of event time, as of a day D (inclusive): the current window is the
`current_days` days ending with D, the reference window the `reference_days` days before it.

Rules, each with its threshold in `Thresholds`:
- Missing values (NaN) are dropped before either test and counted separately.
- A feature with fewer than `min_samples` values in either window is "insufficient data": it
  has no scores and is never drifted, and it does not count as evaluated.
- KS: `scipy.stats.ks_2samp(reference, current)` as is (statistic and p-value).
- PSI: cut points are the reference values' interior quantiles at 1/k, 2/k, ... (k-1)/k (numpy's
  default linear interpolation), duplicates removed; bins are right-closed, (-inf, c1], (c1, c2],
  ..., (c_last, +inf), so every value of either window falls in exactly one bin. A constant or
  few-valued reference therefore gets fewer, wider bins. PSI = sum over bins of
  (cur - ref) * ln(cur / ref) on each window's share of values per bin.
- Empty bins: a share is floored at EMPTY_BIN_SHARE (1e-4) before that sum, so there is no
  log(0) and no division by zero; a bin empty in both windows adds exactly 0.
- A feature drifted when KS p < `ks_p_value` or PSI > `psi`; retrain is recommended when more
  than `share_drifted` of the evaluated features drifted.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Mapping, Sequence

import numpy as np
from scipy.stats import ks_2samp

EMPTY_BIN_SHARE = 1e-4
DRIFTED, STABLE, INSUFFICIENT = "drifted", "stable", "insufficient_data"


@dataclass(frozen=True)
class Thresholds:
    ks_p_value: float = 0.05
    psi: float = 0.2
    share_drifted: float = 0.25
    min_samples: int = 50
    psi_bins: int = 10

    @classmethod
    def from_settings(cls, settings) -> "Thresholds":
        return cls(ks_p_value=settings.drift_ks_p, psi=settings.drift_psi,
                   share_drifted=settings.drift_share, min_samples=settings.drift_min_samples,
                   psi_bins=settings.drift_psi_bins)

    def as_map(self) -> dict[str, float]:
        return {"ks_p_value": self.ks_p_value, "psi": self.psi, "share_drifted": self.share_drifted,
                "min_samples": float(self.min_samples), "psi_bins": float(self.psi_bins)}


@dataclass(frozen=True)
class DriftWindows:
    """Reference [reference_start, current_start) and current [current_start, current_end) days."""
    reference_start: date
    current_start: date
    current_end: date

    @classmethod
    def as_of(cls, day: date, reference_days: int, current_days: int) -> "DriftWindows":
        end = day + timedelta(days=1)
        current_start = end - timedelta(days=current_days)
        return cls(current_start - timedelta(days=reference_days), current_start, end)

    @property
    def last_day(self) -> date:
        return self.current_end - timedelta(days=1)


@dataclass(frozen=True)
class WindowSamples:
    """One window's values: `rows` events, and per feature an array of `rows` floats (NaN =
    missing). A feature absent from `values` is missing in every row."""
    rows: int
    values: Mapping[str, np.ndarray]

    def present(self, feature: str) -> np.ndarray:
        column = self.values.get(feature)
        if column is None:
            return np.empty(0)
        return column[~np.isnan(column)]


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    status: str
    reference_samples: int
    current_samples: int
    reference_missing: int
    current_missing: int
    ks_statistic: float | None = None
    ks_p_value: float | None = None
    psi: float | None = None
    ks_drifted: bool = False
    psi_drifted: bool = False

    @property
    def drifted(self) -> bool:
        return self.status == DRIFTED

    @property
    def evaluated(self) -> bool:
        return self.status != INSUFFICIENT


@dataclass(frozen=True)
class DriftResult:
    features: tuple[FeatureDrift, ...]
    thresholds: Thresholds

    @property
    def evaluated(self) -> int:
        return sum(f.evaluated for f in self.features)

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    @property
    def share_drifted(self) -> float:
        return len(self.drifted_features) / self.evaluated if self.evaluated else 0.0

    @property
    def retrain_recommended(self) -> bool:
        return self.evaluated > 0 and self.share_drifted > self.thresholds.share_drifted

    @property
    def status(self) -> str:
        if not self.evaluated:
            return INSUFFICIENT
        return DRIFTED if self.retrain_recommended else STABLE


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of `current` against `reference` (both non-empty, no NaN)."""
    cuts = np.unique(np.quantile(reference, np.arange(1, bins) / bins))
    ref = np.maximum(_bin_shares(reference, cuts), EMPTY_BIN_SHARE)
    cur = np.maximum(_bin_shares(current, cuts), EMPTY_BIN_SHARE)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _bin_shares(values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Share of `values` in each right-closed bin (-inf, c1], (c1, c2], ..., (c_last, +inf)."""
    return np.bincount(np.searchsorted(cuts, values, side="left"), minlength=len(cuts) + 1) / len(values)


def compare_feature(feature: str, reference: WindowSamples, current: WindowSamples,
                    thresholds: Thresholds) -> FeatureDrift:
    ref, cur = reference.present(feature), current.present(feature)
    counts = dict(reference_samples=len(ref), current_samples=len(cur),
                  reference_missing=reference.rows - len(ref), current_missing=current.rows - len(cur))
    if min(len(ref), len(cur)) < thresholds.min_samples:
        return FeatureDrift(feature, INSUFFICIENT, **counts)
    ks = ks_2samp(ref, cur)
    score = psi(ref, cur, thresholds.psi_bins)
    ks_drifted = bool(ks.pvalue < thresholds.ks_p_value)
    psi_drifted = score > thresholds.psi
    return FeatureDrift(feature, DRIFTED if ks_drifted or psi_drifted else STABLE, **counts,
                        ks_statistic=float(ks.statistic), ks_p_value=float(ks.pvalue), psi=score,
                        ks_drifted=ks_drifted, psi_drifted=psi_drifted)


def evaluate(features: Sequence[str], reference: WindowSamples, current: WindowSamples,
             thresholds: Thresholds) -> DriftResult:
    return DriftResult(tuple(compare_feature(f, reference, current, thresholds) for f in features),
                       thresholds)


def present_features(candidates: Sequence[str], *windows: WindowSamples) -> list[str]:
    """The candidates (in their order) with at least one value in one of the windows."""
    return [f for f in candidates if any(len(w.present(f)) for w in windows)]


def missing_ratio(window: WindowSamples, features: Sequence[str]) -> float:
    """Missing values / (rows x features) of a window; 0 for an empty window or no features."""
    cells = window.rows * len(features)
    if not cells:
        return 0.0
    return sum(window.rows - len(window.present(f)) for f in features) / cells
