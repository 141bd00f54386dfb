"""When to retrain and when to deploy, with the seed's thresholds and tolerances next to the rules.

Retrain when the property has at least `min_total` outcomes and at least `min_new` of them are
new: event time within NEW_WINDOW before the cutoff (`--as-of`, default now) and after the
training window of the newest registered version, so a second run on the same data skips. The
first model of a property/type needs only `min_total` (everything is new to it). `--force`
overrides both thresholds.

Deploy when the new model is not worse than the deployed one on the same validation rows by more
than the tolerance: AUC_new > AUC_prev - AUC_TOLERANCE, or RMSE_new < RMSE_prev x (1 + RMSE_TOLERANCE).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

NEW_WINDOW = timedelta(days=7)
MIN_TOTAL_OUTCOMES = 1000
MIN_NEW_OUTCOMES = 100
AUC_TOLERANCE = 0.01
RMSE_TOLERANCE = 0.01


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str
    total: int
    new: int


def primary_metric(model_type: str) -> str:
    return "auc" if model_type == "conversion" else "rmse"


def check_readiness(times_ms: np.ndarray, cutoff: datetime, trained_until: datetime | None,
                    min_total: int, min_new: int, force: bool = False) -> Readiness:
    """`times_ms`: event times (epoch ms) of the property's outcomes before the cutoff."""
    total = len(times_ms)
    if trained_until is None:
        new, counts = total, f"{total} total outcomes, no model trained yet"
    else:
        since = max(_millis(cutoff - NEW_WINDOW), _millis(trained_until) + 1)
        new = int((times_ms >= since).sum())
        counts = f"{total} total outcomes, {new} new in the 7 days before {cutoff:%Y-%m-%d %H:%M} UTC"
    if force:
        return Readiness(True, f"Forced retrain (criteria overridden): {counts}", total, new)
    if total < min_total:
        return Readiness(False, f"Insufficient total outcomes: {counts} (need {min_total})", total, new)
    if new < min_new:
        return Readiness(False, f"Insufficient new outcomes: {counts} (need {min_new} newer than "
                                "the last training run)", total, new)
    return Readiness(True, f"Ready to retrain: {counts}", total, new)


def deploy_decision(model_type: str, new: dict, previous: dict | None) -> tuple[bool, str]:
    """(deploy?, why) comparing metrics measured on the same validation rows."""
    if previous is None:
        return True, "no deployed model to compare with"
    name = primary_metric(model_type)
    new_value, old_value = new[name], previous[name]
    if name == "auc":
        bound = old_value - AUC_TOLERANCE
        if new_value > bound:
            return True, f"AUC {new_value:.4f} > {old_value:.4f} - {AUC_TOLERANCE} = {bound:.4f}"
        return False, f"AUC {new_value:.4f} <= {old_value:.4f} - {AUC_TOLERANCE} = {bound:.4f}"
    bound = old_value * (1 + RMSE_TOLERANCE)
    if new_value < bound:
        return True, f"RMSE {new_value:.4f} < {old_value:.4f} x {1 + RMSE_TOLERANCE} = {bound:.4f}"
    return False, f"RMSE {new_value:.4f} >= {old_value:.4f} x {1 + RMSE_TOLERANCE} = {bound:.4f}"


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
