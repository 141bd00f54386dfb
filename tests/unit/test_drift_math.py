"""monitoring/drift.py: KS as scipy, PSI as a straightforward reference, the decision rules."""
from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest
from scipy.stats import ks_2samp

from drift_helpers import reference_psi
from monitoring.drift import (DRIFTED, EMPTY_BIN_SHARE, INSUFFICIENT, STABLE, DriftWindows, Thresholds,
                              WindowSamples, compare_feature, evaluate, missing_ratio, present_features, psi)

RNG = np.random.default_rng(42)
CASES = {
    "same distribution": (RNG.normal(100, 10, 3000), RNG.normal(100, 10, 700)),
    "shifted": (RNG.normal(100, 10, 3000), RNG.normal(130, 10, 700)),
    "integers with ties": (RNG.integers(0, 8, 2000).astype(float), RNG.integers(0, 12, 400).astype(float)),
    "binary": ((RNG.random(1000) < 0.3).astype(float), (RNG.random(300) < 0.6).astype(float)),
    "constant reference": (np.full(500, 2.0), RNG.integers(1, 4, 200).astype(float)),
    "heavy tail": (RNG.lognormal(3, 1.5, 5000), RNG.lognormal(3.2, 1.5, 900)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_psi_equals_the_reference_implementation(name):
    reference, current = CASES[name]
    assert psi(reference, current) == pytest.approx(reference_psi(reference, current), abs=1e-9)
    assert psi(reference, current, bins=4) == pytest.approx(reference_psi(reference, current, 4), abs=1e-9)


@pytest.mark.parametrize("name", list(CASES))
def test_ks_equals_scipy(name):
    reference, current = CASES[name]
    result = compare_feature("x", WindowSamples(len(reference), {"x": reference}),
                             WindowSamples(len(current), {"x": current}), Thresholds())
    expected = ks_2samp(reference, current)
    assert result.ks_statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert result.ks_p_value == pytest.approx(expected.pvalue, abs=1e-12)


def test_psi_of_identical_samples_is_zero_and_empty_bins_stay_finite():
    values = RNG.normal(size=1000)
    assert psi(values, values) == pytest.approx(0.0, abs=1e-12)
    # every current value lands above the reference's top cut: nine bins are empty in `current`
    far = psi(np.arange(100.0), np.full(50, 1e6))
    expected = (1 - 0.1) * math.log(1 / 0.1) + 9 * (EMPTY_BIN_SHARE - 0.1) * math.log(EMPTY_BIN_SHARE / 0.1)
    assert far == pytest.approx(expected, abs=1e-12) and math.isfinite(far)


def test_missing_values_are_dropped_and_counted():
    reference = np.concatenate([RNG.normal(size=200), np.full(30, np.nan)])
    current = np.concatenate([RNG.normal(size=100), np.full(5, np.nan)])
    result = compare_feature("x", WindowSamples(230, {"x": reference}), WindowSamples(105, {"x": current}),
                             Thresholds())
    assert (result.reference_samples, result.reference_missing) == (200, 30)
    assert (result.current_samples, result.current_missing) == (100, 5)
    expected = ks_2samp(reference[:200], current[:100])
    assert result.ks_p_value == pytest.approx(expected.pvalue, abs=1e-12)
    assert result.psi == pytest.approx(reference_psi(reference[:200], current[:100]), abs=1e-9)


def test_too_few_samples_is_insufficient_data_never_drifted():
    reference, current = np.zeros(500), np.full(49, 1000.0)  # as different as can be, but 49 < 50
    result = compare_feature("x", WindowSamples(500, {"x": reference}), WindowSamples(60, {"x": current}),
                             Thresholds(min_samples=50))
    assert result.status == INSUFFICIENT and not result.drifted and not result.evaluated
    assert result.ks_p_value is None and result.psi is None
    assert (result.current_samples, result.current_missing) == (49, 11)
    absent = compare_feature("y", WindowSamples(500, {}), WindowSamples(60, {}), Thresholds())
    assert (absent.status, absent.reference_missing, absent.current_missing) == (INSUFFICIENT, 500, 60)


def test_thresholds_decide_each_test_separately():
    reference, current = CASES["shifted"]
    ref, cur = WindowSamples(3000, {"x": reference}), WindowSamples(700, {"x": current})
    both = compare_feature("x", ref, cur, Thresholds())
    assert both.ks_drifted and both.psi_drifted and both.status == DRIFTED
    psi_only = compare_feature("x", ref, cur, Thresholds(ks_p_value=0.0))
    assert psi_only.psi_drifted and not psi_only.ks_drifted and psi_only.drifted
    neither = compare_feature("x", ref, cur, Thresholds(ks_p_value=0.0, psi=both.psi))  # PSI > psi is strict
    assert neither.status == STABLE


def _window(columns: dict[str, np.ndarray]) -> WindowSamples:
    return WindowSamples(len(next(iter(columns.values()))), columns)


def test_retrain_needs_more_than_the_share_of_evaluated_features():
    same, shifted = CASES["same distribution"], CASES["shifted"]
    reference = _window({f"f{i}": same[0] for i in range(4)} | {"s": shifted[0][:3000]})
    current = _window({f"f{i}": same[1] for i in range(4)} | {"s": shifted[1][:700]})
    result = evaluate(["f0", "f1", "f2", "f3", "s"], reference, current, Thresholds(share_drifted=0.2))
    assert result.drifted_features == ["s"] and result.evaluated == 5
    assert result.share_drifted == pytest.approx(0.2) and not result.retrain_recommended  # not more than 20 %
    assert evaluate(["f0", "f1", "f2", "s"], reference, current, Thresholds(share_drifted=0.2)).retrain_recommended


def test_no_evaluated_feature_is_insufficient_data_without_retrain():
    result = evaluate(["x"], WindowSamples(10, {"x": np.ones(10)}), WindowSamples(10, {"x": np.ones(10)}),
                      Thresholds())
    assert result.status == INSUFFICIENT and result.share_drifted == 0.0 and not result.retrain_recommended


def test_windows_end_with_the_as_of_day():
    windows = DriftWindows.as_of(date(2016, 8, 1), reference_days=30, current_days=7)
    assert windows.current_start == date(2016, 7, 26) and windows.current_end == date(2016, 8, 2)
    assert windows.reference_start == date(2016, 6, 26) and windows.last_day == date(2016, 8, 1)


def test_present_features_and_missing_ratio():
    window = WindowSamples(4, {"a": np.array([1.0, np.nan, 3.0, np.nan]), "b": np.full(4, np.nan)})
    other = WindowSamples(2, {"b": np.array([1.0, 2.0])})
    assert present_features(["a", "b", "c"], window) == ["a"]
    assert present_features(["a", "b", "c"], window, other) == ["a", "b"]
    assert missing_ratio(window, ["a", "b"]) == pytest.approx(6 / 8)
    assert missing_ratio(WindowSamples(0, {}), ["a"]) == 0.0
