"""Figure 3: freshness — from produce to readable in the parquet store, for live traffic.

The real `bookloop worker` (drift on, as in production) runs on a 4-partition topic of its own with
the flush interval set explicitly (the default of BOOKLOOP_FLUSH_INTERVAL_SECONDS). Once it has
landed a warm-up event (it has joined and consumes), this process publishes live traffic at a steady
1,000 events/s for 60 s: the real records (bench/records.py) with fresh event ids, timestamps = now
and the 10x data's properties `<hotel>-k` (so all partitions carry traffic), paced with a monotonic
clock; the produce time of every event id is kept. Meanwhile a poller thread lists the store every
50 ms and reads the event_id column of each new part file, keeping the first time each id was
readable. Freshness = readable time - produce time; every event sent must be seen (a missing one is
a lost event, not a freshness number).
"""
from __future__ import annotations

import itertools
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow.parquet as pq

from bench import kafka_run
from bench.records import real_outcomes
from bench.report import Figure
from consumers.paths import iter_part_files
from consumers.process import WorkerProcess
from producers.publisher import OutcomePublisher
from producers.topics import ensure_topics
from schemas.settings import Settings

RATE = 1000            # events per second
SECONDS = 60.0         # of live traffic
POLL_SECONDS = 0.05    # store listing period
SLACK_SECONDS = 2.0    # target: p99 <= flush interval + this
PROPERTIES = 10        # copies k of each hotel: `<hotel>-k`, as in the 10x data
WARMUP_ID = "bench-fresh:warmup"


class StorePoller(threading.Thread):
    """Lists the store every `period` s; `seen[event_id]` = clock() of the listing that found it."""

    def __init__(self, data_dir: Path, period: float = POLL_SECONDS, clock: Callable[[], float] = time.monotonic):
        super().__init__(name="freshness-poller", daemon=True)
        self.data_dir, self.period, self.clock = data_dir, period, clock
        self.seen: dict[str, float] = {}
        self.files = 0
        self.error: BaseException | None = None
        self._known: set[Path] = set()
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                self.scan()
                self._halt.wait(self.period)
        except BaseException as exc:   # reported by wait_for / stop
            self.error = exc

    def scan(self) -> None:
        new = [path for _, _, path, _ in iter_part_files(self.data_dir) if path not in self._known]
        found = self.clock()   # the listing that found them; reading them is the poller's cost
        for path in new:
            ids = pq.read_table(path, columns=["event_id"]).column("event_id").to_pylist()
            for event_id in ids:
                self.seen.setdefault(event_id, found)
            self._known.add(path)
            self.files += 1

    def wait_for(self, ids, timeout: float, worker: WorkerProcess) -> bool:
        """Until every id was seen; False after `timeout` s."""
        deadline = time.monotonic() + timeout
        while not all(i in self.seen for i in ids):
            self._check(worker)
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_SECONDS)
        return True

    def stop(self) -> None:
        self._halt.set()
        self.join(10)
        if self.error is not None:
            raise self.error

    def _check(self, worker: WorkerProcess) -> None:
        if self.error is not None:
            raise self.error
        if worker.proc.poll() is not None:
            raise RuntimeError(f"worker exited with {worker.proc.returncode}")


def _live(record: dict, i: int) -> dict:
    return {**record, "event_id": f"bench-fresh:{i}", "property_id": f"{record['property_id']}-{i % PROPERTIES}",
            "timestamp": datetime.now(timezone.utc)}


def send_live(publisher: OutcomePublisher, rate: float, seconds: float,
              clock: Callable[[], float] = time.monotonic) -> tuple[dict[str, float], float]:
    """Publish `rate` events/s for `seconds`, each when it is due; (produce time per id, send seconds)."""
    total = int(rate * seconds)
    source = itertools.cycle(real_outcomes())
    produced: dict[str, float] = {}
    start = clock()
    i = 0
    while i < total:
        due = min(total, int((clock() - start) * rate) + 1)
        while i < due:
            record = _live(next(source), i)
            produced[record["event_id"]] = clock()
            publisher.publish(record)
            i += 1
        time.sleep(max(0.0, start + i / rate - clock()))
    return produced, produced[f"bench-fresh:{total - 1}"] - start


def measure(bootstrap: str, work: Path, rate: float = RATE, seconds: float = SECONDS) -> Figure:
    interval = Settings().flush_interval_seconds
    settings = kafka_run.run_settings(bootstrap, work / "fresh", "fresh", flush_interval_seconds=interval)
    ensure_topics(settings)
    worker = WorkerProcess(settings, work / "worker-fresh.log", log_level="WARNING")
    poller = StorePoller(Path(settings.data_dir))
    try:
        worker.start().wait_ready()
        poller.start()
        with OutcomePublisher(settings) as publisher:
            publisher.publish(_live(real_outcomes()[0], 0) | {"event_id": WARMUP_ID})
            publisher.flush()
            if not poller.wait_for([WARMUP_ID], 60 + interval, worker):
                raise TimeoutError(f"the warm-up event did not land within {60 + interval:.0f} s")
            produced, sending = send_live(publisher, rate, seconds)
            publisher.flush()
        all_seen = poller.wait_for(produced, interval + 30, worker)
        files = worker.metrics().get("bookloop_parquet_files_written_total", 0)
    except BaseException:
        print(worker.log_tail(), file=sys.stderr)
        raise
    finally:
        worker.stop()
        poller.stop()
    lost = [i for i in produced if i not in poller.seen]
    if not all_seen or lost:
        raise RuntimeError(f"{len(lost):,} of {len(produced):,} events sent never became readable "
                           f"(e.g. {lost[:3]}): lost events, not a freshness number")
    return _figure(produced, poller.seen, interval, sending, files)


def _figure(produced: dict[str, float], seen: dict[str, float], interval: float, sending: float,
            files: float) -> Figure:
    fresh = np.array([seen[i] - t for i, t in produced.items()])
    p50, p99, worst = (float(x) for x in np.percentile(fresh, [50, 99, 100]))
    limit = interval + SLACK_SECONDS
    sent = len(produced)
    seen_count = sum(1 for i in produced if i in seen)
    return Figure(
        3, "freshness p99 at 1,000 ev/s", value=p99, unit="s", baseline=interval, ratio=p99 / limit,
        target=f"p99 ≤ flush interval + {SLACK_SECONDS:g} s", passed=p99 <= limit,
        note=f"{sent:,} live events (real records, fresh ids, timestamp = now, {2 * PROPERTIES} properties, "
             f"4 partitions) sent at {(sent - 1) / sending:,.0f} ev/s over {sending:.1f} s, {seen_count:,} seen in "
             f"the store ({files:,.0f} files written); flush interval {interval:g} s (the default); "
             f"p50 {p50:.2f} s, p99 {p99:.2f} s, max {worst:.2f} s; baseline = the flush interval, "
             f"ratio = p99 / (interval + {SLACK_SECONDS:g} s); store polled every {POLL_SECONDS * 1000:.0f} ms",
        details=[{"name": "freshness p50", "value": p50, "unit": "s", "baseline": interval,
                  "ratio": p50 / interval, "target": "reported", "pass": None}])
