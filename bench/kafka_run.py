"""Kafka-side tools of the benchmarks: run settings, pre-publishing, child consumers and their
timing (first consumed -> everything committed) and peak RSS."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable


from consumers.process import WorkerProcess
from producers.embedded_broker import free_port
from producers.publisher import OutcomePublisher
from producers.topics import committed_past, ensure_topics
from schemas.settings import Settings

POLL_SECONDS = 0.1


def run_settings(bootstrap: str, data_dir: Path, name: str, **overrides) -> Settings:
    """Settings of one benchmark run: its own topics, group and store; 4 partitions."""
    return Settings(bootstrap_servers=bootstrap, data_dir=str(data_dir), web_port=free_port(),
                    outcomes_topic=f"bench-{name}", dlq_topic=f"bench-{name}.dlq",
                    drift_topic=f"bench-{name}.drift", group_id=f"bench-{name}-worker",
                    partitions=4, session_timeout_seconds=6.0, **overrides)


def prepublish(settings: Settings, records: Iterable[dict]) -> tuple[int, dict[int, int]]:
    """Publish every record (validated, encoded) and wait for the broker; (sent, last offsets)."""
    ensure_topics(settings)
    sent = 0
    with OutcomePublisher(settings) as publisher:
        for record in records:
            publisher.publish(record)
            sent += 1
        publisher.flush()
        offsets = dict(publisher.delivered_offsets)
    return sent, offsets


def wait_committed_at(settings: Settings, group_id: str, last_offsets: dict[int, int], timeout: float,
                      proc: subprocess.Popen) -> float:
    """Wall time (time.time) once `group_id` committed past every offset."""
    deadline = time.monotonic() + timeout
    while not committed_past(settings, group_id, last_offsets):
        if proc.poll() is not None:
            raise RuntimeError(f"consumer exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"group {group_id} not committed past {last_offsets}")
        time.sleep(POLL_SECONDS * 2)
    return time.time()


def peak_rss_bytes(pid: int) -> int:
    """Peak resident set size of a live process and its children (the worker's decode helpers):
    the sum of their VmHWM, an upper bound because their peaks need not coincide."""
    return sum(_vm_hwm(p) for p in [pid, *_children(pid)])


def _vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmHWM")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *_children(int(child))]
    return found


@dataclass
class Consumed:
    seconds: float      # first consumed -> everything committed
    events: int
    peak_rss: int       # bytes
    metrics: dict

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def run_worker(settings: Settings, events: int, last_offsets: dict[int, int], log_dir: Path,
               name: str, timeout: float = 900) -> Consumed:
    """The real `bookloop worker` over the pre-published topic."""
    worker = WorkerProcess(settings, log_dir / f"{name}.log", log_level="WARNING")
    try:
        worker.start().wait_ready()
        first = _first_consumed(worker, timeout)
        done = wait_committed_at(settings, settings.group_id, last_offsets, timeout, worker.proc)
        peak, metrics = peak_rss_bytes(worker.proc.pid), worker.metrics()
    except BaseException:
        print(worker.log_tail(), file=sys.stderr)
        raise
    finally:
        worker.stop()
    return Consumed(done - first, events, peak, metrics)


def run_workers(settings: Settings, count: int, events: int, last_offsets: dict[int, int], log_dir: Path,
                name: str, timeout: float = 900) -> Consumed:
    """`count` real workers in one group (one store) over the topic; peak RSS is the largest."""
    workers = [WorkerProcess(settings.replace(web_port=free_port()), log_dir / f"{name}-{i}.log",
                             log_level="WARNING") for i in range(count)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready()
        first = _first_consumed(workers, timeout)
        done = wait_committed_at(settings, settings.group_id, last_offsets, timeout, workers[0].proc)
        peak = max(peak_rss_bytes(w.proc.pid) for w in workers)
    finally:
        for worker in workers:
            worker.stop()
    return Consumed(done - first, events, peak, {})


def _first_consumed(workers: WorkerProcess | list[WorkerProcess], timeout: float) -> float:
    workers = workers if isinstance(workers, list) else [workers]
    deadline = time.monotonic() + timeout
    while all(w.metrics().get("bookloop_events_consumed_total", 0) == 0 for w in workers):
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker consumed nothing in {timeout} s")
        time.sleep(POLL_SECONDS)
    return time.time()


def run_floor(settings: Settings, events: int, last_offsets: dict[int, int], log_dir: Path,
              timeout: float = 600) -> Consumed:
    """The Faust floor (bench/floor_app.py) over the same topic, in its own group."""
    floor = settings.replace(group_id=f"{settings.group_id}-floor", web_port=free_port(),
                             data_dir=str(Path(settings.data_dir) / "floor"))
    mark = log_dir / f"{floor.group_id}.first"
    mark.unlink(missing_ok=True)
    env = {**os.environ, **floor.to_env(), "BENCH_FIRST_CONSUMED_FILE": str(mark), "PYTHONUNBUFFERED": "1"}
    with open(log_dir / "floor.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bench.floor_app", "worker"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                cwd=Path(__file__).resolve().parent.parent)
    try:
        done = wait_committed_at(floor, floor.group_id, last_offsets, timeout, proc)
        peak = peak_rss_bytes(proc.pid)
        first = float(mark.read_text())
    finally:
        _stop(proc)
    return Consumed(done - first, events, peak, {})


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
