"""Tools of the fault-injection suite: sizes, background replays, and 'everything settled' checks.

`make chaos` sets BOOKLOOP_CHAOS=full (the whole real replay, 5 kills); `make test` runs the
same scenarios on a slice of the data so CI stays fast. BOOKLOOP_CHAOS_SEED replays a schedule.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds

from consumers.paths import outcomes_root
from consumers.process import WorkerProcess
from producers.embedded_broker import free_port
from producers.publisher import OutcomePublisher
from producers.replay import ReplayReport, replay_dataset
from producers.topics import committed_past
from schemas.settings import Settings

FULL = os.environ.get("BOOKLOOP_CHAOS") == "full"
REPLAY_LIMIT = None if FULL else 15_000
KILLS = 5 if FULL else 3
REPLAY_RATE = 2000 if FULL else 450   # events/s: the replay outlasts the kill schedule


def chaos_rng(name: str) -> random.Random:
    seed = int(os.environ.get("BOOKLOOP_CHAOS_SEED", random.SystemRandom().randrange(1 << 31)))
    print(f"\nCHAOS {name}: seed {seed} (BOOKLOOP_CHAOS_SEED={seed} replays this schedule)")
    return random.Random(seed)


class BackgroundReplay(threading.Thread):
    """The real dataset (5 % re-sent) published from a thread while the test breaks things."""

    def __init__(self, settings: Settings, limit: int | None = REPLAY_LIMIT, rate: float | None = None):
        super().__init__(daemon=True)
        self.settings, self.limit, self.rate = settings, limit, rate
        self.publisher = OutcomePublisher(settings)
        self.report: ReplayReport | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.publisher:
                self.report = replay_dataset(self.settings, limit=self.limit, rate=self.rate,
                                             resend_fraction=0.05, create_topics=False,
                                             publisher=self.publisher)
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def finish(self, timeout: float = 300) -> ReplayReport:
        self.join(timeout)
        if self.error is not None:
            raise self.error
        assert self.report is not None, "replay did not finish"
        return self.report


STARTED: list[WorkerProcess] = []   # killed after each test by the conftest, whatever happened


def start_worker(settings: Settings, log_dir: Path, name: str) -> WorkerProcess:
    worker = WorkerProcess(settings.replace(web_port=free_port()), log_dir / f"{name}.log")
    STARTED.append(worker)
    worker.start().wait_ready()
    return worker


def wait_consuming(worker: WorkerProcess, timeout: float = 60) -> None:
    """Until the worker has joined the group and landed something."""
    deadline = time.monotonic() + timeout
    while landed(worker) == 0:
        assert time.monotonic() < deadline, f"worker never landed anything:\n{worker.log_tail()}"
        time.sleep(0.2)


def landed(worker: WorkerProcess) -> float:
    return worker.metrics().get("bookloop_events_landed_total", 0)


def wait_any_landing(workers: list[WorkerProcess], timeout: float = 90) -> WorkerProcess:
    """The first worker that lands something (only partitions with data ever land)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in workers:
            if landed(worker) > 0:
                return worker
        time.sleep(0.2)
    raise AssertionError("no worker landed anything:\n" + "\n".join(w.log_tail() for w in workers))


def crash_inside_flush(settings: Settings, log_dir: Path, name: str, point: str, nth: int,
                       timeout: float = 120) -> bool:
    """Run a worker armed to SIGKILL itself at a crash point inside its nth flush (see
    consumers/failpoints.py); True when it died there leaving the half-done flush behind."""
    worker = WorkerProcess(settings.replace(web_port=free_port()), log_dir / f"{name}.log",
                           extra_env={"BOOKLOOP_FAILPOINT": f"{point}:{nth}"})
    STARTED.append(worker)
    worker.start()
    try:
        worker.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        worker.kill()
        return False
    return worker.proc.returncode == -signal.SIGKILL and bool(temp_files(settings))


def wait_committed(settings: Settings, last_offsets: dict[int, int], timeout: float = 300) -> None:
    """Until the worker group has committed past every message the producer delivered."""
    deadline = time.monotonic() + timeout
    while not committed_past(settings, settings.group_id, last_offsets):
        assert time.monotonic() < deadline, f"group {settings.group_id} not committed past {last_offsets}"
        time.sleep(0.5)


def landed_counts(settings: Settings) -> tuple[int, int]:
    root = outcomes_root(settings.data_dir)
    table = ds.dataset(root, format="parquet", partitioning="hive").to_table(columns=["event_id"])
    return table.num_rows, pc.count_distinct(table.column("event_id")).as_py()


def temp_files(settings: Settings) -> list[Path]:
    return list(outcomes_root(settings.data_dir).rglob(".*.tmp"))


def report_line(scenario: str, sent: int, settings: Settings, dead: int = 0) -> tuple[int, int]:
    rows, distinct = landed_counts(settings)
    print(f"CHAOS {scenario}: sent={sent} landed={rows} distinct={distinct} dead_lettered={dead}")
    return rows, distinct
