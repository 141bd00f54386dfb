"""Drift in the stream: a LandingSink listener that re-evaluates a property's drift whenever one of
its event-time windows lands, exports the scores as Prometheus gauges, and publishes one
`DriftDetected` event each time the property enters the retrain-recommended state. Windows of a
property that land in the same flush (a replay of history closes many at once) share one
evaluation, scheduled on the event loop right after that flush, and a property is evaluated at
most every BOOKLOOP_DRIFT_EVAL_INTERVAL_SECONDS of wall time: windows landing sooner are
evaluated together once the interval is up (on the newest data then). Live traffic lands a
property's window once per flush interval, so this only thins the evaluations of a catch-up or
replay, which closes a window every few hundred events; gauges changing faster than Prometheus
scrapes them were never seen anyway.

Memory: each tracked property keeps a PropertyHistory (at most reference + current days of at
most BOOKLOOP_DRIFT_DAY_SAMPLES rows). The first window of a property this worker sees loads
those days back from the landed parquet, so a restarted worker or a new owner after a rebalance
starts with full windows. At most BOOKLOOP_METRICS_MAX_PROPERTIES properties are tracked (the
first ones seen); windows of others are only counted.

"Retrain recommended" survives restarts and rebalances in `<data_dir>/drift-state/<property>.json`
(written after the event is handed to the producer), so a property still drifting after a
restart does not publish again; a crash between the two can repeat one event (at least once).
"""
from __future__ import annotations

import functools
import json
import logging
import os
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import pyarrow as pa

from consumers.drift_samples import PropertyHistory, candidate_features, iter_parts, part_id
from consumers.landing import DAY_MS, LandingSink, WindowKey
from consumers.paths import encode_segment
from monitoring.drift import DriftResult, DriftWindows, Thresholds, evaluate, missing_ratio, present_features
from monitoring.metrics import DriftMetrics
from schemas.codec import default_codec
from schemas.settings import Settings

log = logging.getLogger("bookloop.drift")
Publish = Callable[[str, bytes], None]
Schedule = Callable[[float, Callable[[], None]], Any]   # (delay in seconds, fn)
WINDOWS = ("reference", "current")


def _at_once(delay: float, fn: Callable[[], None]) -> None:
    fn()


class DriftTracker:
    def __init__(self, settings: Settings, metrics: DriftMetrics, publish: Publish,
                 clock: Callable[[], float] = time.time, schedule: Schedule = _at_once,
                 monotonic: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.metrics = metrics
        self.thresholds = Thresholds.from_settings(settings)
        self._publish = publish
        self._clock = clock
        self._schedule = schedule
        self._monotonic = monotonic
        self._due: set[str] = set()
        self._evaluated_at: dict[str, float] = {}
        self._keep_days = settings.drift_reference_days + settings.drift_current_days
        self._histories: dict[str, PropertyHistory] = {}
        self._partition_of: dict[str, int] = {}
        self._exported: dict[str, set[str]] = {}
        self._retraining: dict[str, bool] = {}
        self._state_dir = Path(settings.data_dir) / "drift-state"

    def on_window(self, key: WindowKey, table: pa.Table) -> None:
        """LandingSink listener: `table` of window `key` is durable in the store. Windows of a
        property that land in one flush share one evaluation (scheduled after the flush)."""
        if self._history(key, table) is None:
            self.metrics.untracked_windows.inc()
        elif key.property_id not in self._due:
            self._due.add(key.property_id)
            last = self._evaluated_at.get(key.property_id, float("-inf"))
            delay = max(0.0, last + self.settings.drift_eval_interval_seconds - self._monotonic())
            self._schedule(delay, functools.partial(self.evaluate_now, key.property_id))

    def evaluate_now(self, property_id: str) -> None:
        self._due.discard(property_id)
        history = self._histories.get(property_id)
        if history is None:  # its partition moved away meanwhile
            return
        started = time.perf_counter()
        self._evaluated_at[property_id] = self._monotonic()
        windows = DriftWindows.as_of(history.newest, self.settings.drift_reference_days,
                                     self.settings.drift_current_days)
        try:
            result = self._evaluate(property_id, history, windows)
            self._transition(property_id, result, windows)
        except Exception:  # drift must never stop landing
            log.exception("drift: evaluating %s failed", property_id)
        self.metrics.evaluation_seconds.observe(time.perf_counter() - started)

    def _history(self, key: WindowKey, table: pa.Table) -> PropertyHistory | None:
        day = _day(key.start_ms)
        history = self._histories.get(key.property_id)
        if history is None:
            if len(self._histories) >= self.settings.metrics_max_properties:
                return None
            history = self._load(key.property_id, day)
            self._histories[key.property_id] = history
            self._retraining[key.property_id] = self._saved_state(key.property_id)
            self.metrics.tracked_properties.set(len(self._histories))
        self._partition_of[key.property_id] = key.partition
        if table.num_rows:
            history.add(day, part_id(table), table)
        return history

    def _load(self, property_id: str, day: date) -> PropertyHistory:
        """The days the windows need, from the store (the landed window itself included)."""
        history = PropertyHistory(self.settings.drift_day_samples, self._keep_days)
        start = day - timedelta(days=self._keep_days - 1)
        parts = 0
        for part_day, part in iter_parts(self.settings.data_dir, property_id, start):
            parts += history.add(part_day, part_id(part), part)
        log.info("drift: tracking %s, %d landed part files loaded from %s on", property_id, parts, start)
        return history

    def _evaluate(self, property_id: str, history: PropertyHistory, windows: DriftWindows) -> DriftResult:
        reference, reference_rows = history.window(windows.reference_start, windows.current_start)
        current, current_rows = history.window(windows.current_start, windows.current_end)
        features = present_features(candidate_features(reference, current), reference, current)
        result = evaluate(features, reference, current, self.thresholds)
        self._export(property_id, result)
        m, labels = self.metrics, (property_id,)
        for window, samples, rows in (("reference", reference, reference_rows),
                                      ("current", current, current_rows)):
            m.window_events.labels(*labels, window).set(rows)
            m.missing_ratio.labels(*labels, window).set(missing_ratio(samples, features))
        m.share_drifted.labels(*labels).set(result.share_drifted)
        m.evaluated.labels(*labels).set(result.evaluated)
        m.retrain_recommended.labels(*labels).set(int(result.retrain_recommended))
        m.last_evaluation.labels(*labels).set(self._clock())
        m.current_window_end.labels(*labels).set(_millis(windows.current_end) / 1000)
        return result

    def _export(self, property_id: str, result: DriftResult) -> None:
        m = self.metrics
        for f in result.features:
            labels = (property_id, f.feature)
            m.feature_drifted.labels(*labels).set(int(f.drifted))
            m.samples.labels(*labels, "reference").set(f.reference_samples)
            m.samples.labels(*labels, "current").set(f.current_samples)
            scores = ((m.ks_statistic, f.ks_statistic), (m.ks_p_value, f.ks_p_value), (m.psi, f.psi))
            for gauge, value in scores:
                if value is None:
                    _remove(gauge, labels)
                else:
                    gauge.labels(*labels).set(value)
        names = {f.feature for f in result.features}
        for gone in self._exported.get(property_id, set()) - names:
            self._remove_feature(property_id, gone)
        self._exported[property_id] = names

    def _remove_feature(self, property_id: str, feature: str) -> None:
        m = self.metrics
        for gauge in (m.ks_statistic, m.ks_p_value, m.psi, m.feature_drifted):
            _remove(gauge, (property_id, feature))
        for window in WINDOWS:
            _remove(m.samples, (property_id, feature, window))

    # ---- the retrain-recommended state and DriftDetected events --------------------------
    def _transition(self, property_id: str, result: DriftResult, windows: DriftWindows) -> None:
        was = self._retraining[property_id]
        if result.retrain_recommended and not was:
            record = drift_detected_record(property_id, result, windows, self._clock())
            self._publish(property_id, default_codec().encode(record, "bookloop.DriftDetected"))
            self.metrics.events_published.inc()
            log.warning("drift: %s entered the retrain-recommended state (%d/%d features drifted: %s)",
                        property_id, len(result.drifted_features), result.evaluated,
                        ", ".join(result.drifted_features))
            self._save_state(property_id, True)
        elif was and not result.retrain_recommended:
            log.info("drift: %s left the retrain-recommended state", property_id)
            self._save_state(property_id, False)

    def _state_path(self, property_id: str) -> Path:
        return self._state_dir / f"{encode_segment(property_id)}.json"

    def _saved_state(self, property_id: str) -> bool:
        try:
            return json.loads(self._state_path(property_id).read_text())["retrain_recommended"]
        except FileNotFoundError:
            return False

    def _save_state(self, property_id: str, recommended: bool) -> None:
        self._retraining[property_id] = recommended
        self._state_dir.mkdir(parents=True, exist_ok=True)
        path = self._state_path(property_id)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps({"retrain_recommended": recommended, "changed_at": self._clock()}))
        os.replace(tmp, path)

    # ---- rebalances ----------------------------------------------------------------------
    def keep_partitions(self, partitions: Iterable[int]) -> None:
        """After a rebalance: stop tracking (and exporting) properties of partitions now elsewhere."""
        partitions = set(partitions)
        for property_id in [p for p, part in self._partition_of.items() if part not in partitions]:
            for feature in self._exported.pop(property_id, set()):
                self._remove_feature(property_id, feature)
            m = self.metrics
            for gauge in (m.share_drifted, m.evaluated, m.retrain_recommended, m.last_evaluation,
                          m.current_window_end):
                _remove(gauge, (property_id,))
            for window in WINDOWS:
                _remove(m.window_events, (property_id, window))
                _remove(m.missing_ratio, (property_id, window))
            self._histories.pop(property_id, None)
            self._retraining.pop(property_id, None)
            self._evaluated_at.pop(property_id, None)
            del self._partition_of[property_id]
        self.metrics.tracked_properties.set(len(self._histories))


def drift_detected_record(property_id: str, result: DriftResult, windows: DriftWindows, now: float) -> dict:
    return {"property_id": property_id, "detected_at": int(now * 1000),
            "reference_start": _millis(windows.reference_start),
            "current_start": _millis(windows.current_start), "current_end": _millis(windows.current_end), "share_drifted": result.share_drifted,
            "drifted_features": result.drifted_features, "evaluated_features": result.evaluated,
            "thresholds": result.thresholds.as_map()}


def _remove(gauge: Any, labels: tuple) -> None:
    try:
        gauge.remove(*labels)
    except KeyError:
        pass


def _day(millis: int) -> date:
    return datetime.fromtimestamp(millis // DAY_MS * 86400, tz=timezone.utc).date()


def _millis(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp() * 1000)


def attach_drift_tracker(app: Any, sink: LandingSink, settings: Settings,
                         metrics: DriftMetrics) -> DriftTracker:
    """Wire a tracker into a Faust app: listener on the sink, DriftDetected onto the drift topic."""
    topic = app.topic(settings.drift_topic, key_type=bytes, value_type=bytes,
                      key_serializer="raw", value_serializer="raw")

    def publish(property_id: str, value: bytes) -> None:
        topic.send_soon(key=property_id.encode("utf-8"), value=value)

    # evaluate after the flush that landed the windows, on the worker's event loop
    tracker = DriftTracker(settings, metrics, publish, schedule=lambda delay, fn: app.loop.call_later(delay, fn))
    sink.add_listener(tracker.on_window)

    async def on_assigned(sender: Any, assigned: Iterable, **_: Any) -> None:
        # on assignment, not revocation: revoked windows are flushed (and seen here) before it
        tracker.keep_partitions(tp.partition for tp in assigned if tp.topic == settings.outcomes_topic)

    app.on_partitions_assigned.connect(on_assigned)
    return tracker
