"""consumers/drift_tracker.py behind the real LandingSink: gauges, DriftDetected once per entry,
state across restarts, the same numbers as the batch CLI, bounded properties."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry

from batch.drift import drift_for_property
from consumers.drift_tracker import DriftTracker
from drift_helpers import Lander, day_range
from monitoring.metrics import DriftMetrics
from schemas.codec import default_codec
from schemas.settings import Settings


class Tracked:
    """A tracker with a fresh registry that records what it publishes."""

    def __init__(self, settings: Settings):
        self.registry = CollectorRegistry()
        self.published: list[tuple[str, dict]] = []
        self.tracker = DriftTracker(settings, DriftMetrics(self.registry), self._publish, clock=lambda: 1.7e9)

    def _publish(self, key: str, value: bytes) -> None:
        self.published.append((key, default_codec().decode(value, "bookloop.DriftDetected")))

    def value(self, name: str, **labels) -> float | None:
        return self.registry.get_sample_value(name, labels)


@pytest.fixture
def settings(tmp_path):
    return Settings.from_env({}, data_dir=str(tmp_path), drift_reference_days=10, drift_current_days=3,
                             drift_min_samples=20)


def test_gauges_and_one_event_per_entry_into_retrain(settings):
    tracked = Tracked(settings)
    lander = Lander(settings, [tracked.tracker.on_window])
    lander.land("city", 0, day_range(0, 12), per_day=150)
    assert tracked.value("bookloop_drift_retrain_recommended", property_id="city") == 0
    assert tracked.value("bookloop_drift_samples", property_id="city", feature="quoted_price", window="reference") == 1500
    assert tracked.value("bookloop_drift_window_events", property_id="city", window="current") == 450
    assert tracked.value("bookloop_drift_ks_p_value", property_id="city", feature="comp_p50") is None  # no data
    before = len(tracked.published)
    for day in day_range(13, 16):  # prices x 1.5: drifted on every evaluation, one event
        lander.land("city", 0, [day], per_day=150, price_factor=1.5)
        assert tracked.value("bookloop_drift_retrain_recommended", property_id="city") == 1
    assert tracked.value("bookloop_drift_feature_drifted", property_id="city", feature="quoted_price") == 1
    assert tracked.value("bookloop_drift_psi", property_id="city", feature="quoted_price") > 0.2
    end_of_day_16 = datetime(2016, 6, 18, tzinfo=timezone.utc).timestamp()
    assert tracked.value("bookloop_drift_current_window_end_timestamp_seconds", property_id="city") == end_of_day_16
    assert [key for key, _ in tracked.published[before:]] == ["city"]
    event = tracked.published[-1][1]
    assert {"quoted_price", "final_price"} <= set(event["drifted_features"]) and event["share_drifted"] > 0.25
    assert event["current_end"] == datetime(2016, 6, 15, tzinfo=timezone.utc)  # entered as of day 13
    assert event["thresholds"]["min_samples"] == 20
    assert tracked.value("bookloop_drift_events_published_total") == len(tracked.published)

    lander.land("city", 0, day_range(17, 40), per_day=150)  # back to normal long enough: leaves the state
    assert tracked.value("bookloop_drift_retrain_recommended", property_id="city") == 0
    before = len(tracked.published)
    lander.land("city", 0, day_range(41, 44), per_day=150, price_factor=0.5)  # enters again
    assert [key for key, _ in tracked.published[before:]] == ["city"]


def test_the_state_survives_a_restart_and_history_is_read_back(settings):
    first = Tracked(settings)
    lander = Lander(settings, [first.tracker.on_window])
    lander.land("city", 0, day_range(0, 12), per_day=150)
    lander.land("city", 0, day_range(13, 15), per_day=150, price_factor=1.5)
    assert first.value("bookloop_drift_retrain_recommended", property_id="city") == 1

    restarted = Tracked(settings)  # a new worker on the same store: loads the days it needs
    lander.sink._listeners[:] = [restarted.tracker.on_window]
    lander.land("city", 0, day_range(16, 16), per_day=150, price_factor=1.5)
    assert restarted.value("bookloop_drift_retrain_recommended", property_id="city") == 1
    assert restarted.published == []  # still the same drift episode
    assert restarted.value("bookloop_drift_samples", property_id="city", feature="quoted_price",
                           window="reference") == 1500


def test_the_worker_numbers_equal_the_cli_numbers(settings):
    tracked = Tracked(settings)
    lander = Lander(settings, [tracked.tracker.on_window])
    lander.land("city", 0, day_range(0, 14), per_day=30)
    lander.land("city", 0, day_range(15, 16), per_day=30, price_factor=1.2)
    batch = drift_for_property(settings, "city").result
    for feature in batch.features:
        labels = dict(property_id="city", feature=feature.feature)
        assert tracked.value("bookloop_drift_ks_statistic", **labels) == feature.ks_statistic
        assert tracked.value("bookloop_drift_ks_p_value", **labels) == feature.ks_p_value
        assert tracked.value("bookloop_drift_psi", **labels) == feature.psi
    assert tracked.value("bookloop_drift_features_drifted_ratio", property_id="city") == batch.share_drifted


def test_properties_beyond_the_cap_are_counted_not_tracked(settings):
    tracked = Tracked(settings.replace(metrics_max_properties=1))
    lander = Lander(settings, [tracked.tracker.on_window])
    lander.land("city", 0, day_range(0, 2), per_day=5)
    lander.land("resort", 1, day_range(0, 2), per_day=5)
    assert tracked.value("bookloop_drift_tracked_properties") == 1
    assert tracked.value("bookloop_drift_untracked_windows_total") == 3
    assert tracked.value("bookloop_drift_features_evaluated", property_id="resort") is None

    tracked.tracker.keep_partitions([1])  # city's partition went to another worker
    assert tracked.value("bookloop_drift_features_evaluated", property_id="city") is None
    assert tracked.value("bookloop_drift_samples", property_id="city", feature="quoted_price", window="current") is None
    assert tracked.value("bookloop_drift_tracked_properties") == 0


def test_a_property_is_evaluated_at_most_once_per_interval_on_the_newest_data(settings):
    settings = settings.replace(drift_eval_interval_seconds=5.0)
    now = [100.0]
    scheduled: list[tuple[float, object]] = []
    registry = CollectorRegistry()
    tracker = DriftTracker(settings, DriftMetrics(registry), lambda key, value: None, clock=lambda: 1.7e9,
                           schedule=lambda delay, fn: scheduled.append((delay, fn)), monotonic=lambda: now[0])
    lander = Lander(settings, [tracker.on_window])

    def run_due():
        delays = [delay for delay, _ in scheduled]
        for _, fn in scheduled:
            fn()
        scheduled.clear()
        return delays

    def current_end():
        return registry.get_sample_value("bookloop_drift_current_window_end_timestamp_seconds",
                                         {"property_id": "city"})

    lander.land("city", 0, day_range(0, 12), per_day=150)   # one flush per day: 13 windows
    assert run_due() == [0.0]                                 # one evaluation, right after the flush
    assert current_end() == datetime(2016, 6, 14, tzinfo=timezone.utc).timestamp()
    now[0] += 2.0
    lander.land("city", 0, day_range(13, 13), per_day=150)
    lander.land("city", 0, day_range(14, 14), per_day=150)
    assert current_end() == datetime(2016, 6, 14, tzinfo=timezone.utc).timestamp()  # not yet
    assert run_due() == [3.0]                                 # once, when the 5 s are up: days 13 and 14
    assert current_end() == datetime(2016, 6, 16, tzinfo=timezone.utc).timestamp()
    now[0] += 7.0
    lander.land("city", 0, day_range(15, 15), per_day=150)
    assert run_due() == [0.0]
