"""Broker trouble: a worker that starts before Kafka, a broker that dies and comes back empty,
and a replay aimed at nothing."""
import hashlib
import subprocess
import sys
import time

import pytest

from chaos import FULL, BackgroundReplay, report_line, wait_committed
from consumers.paths import iter_part_files
from consumers.process import WorkerProcess
from producers.embedded_broker import EmbeddedBroker, free_port
from producers.topics import ensure_topics


@pytest.fixture
def own_broker():
    """A broker of the test's own (the session one must not be restarted)."""
    embedded = EmbeddedBroker()
    yield embedded
    embedded.stop()


def wait_for_log(worker: WorkerProcess, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in worker.log_tail(1_000_000):
        assert time.monotonic() < deadline, f"no {text!r} in the log:\n{worker.log_tail()}"
        time.sleep(0.3)


def snapshot(settings) -> dict[str, str]:
    return {str(path): hashlib.sha256(path.read_bytes()).hexdigest()
            for _, _, path, _ in iter_part_files(settings.data_dir)}


def test_worker_started_before_the_broker_waits_then_consumes(settings_factory, tmp_path, own_broker):
    settings = settings_factory(tmp_path, bootstrap_servers=own_broker.bootstrap, flush_interval_seconds=1.0)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        wait_for_log(worker, "waiting for Kafka")
        time.sleep(3)
        assert worker.proc.poll() is None, "the worker must keep retrying, not exit"
        assert worker.log_tail(1_000_000).count("waiting for Kafka") <= 4   # backoff, not a busy loop
        own_broker.start()
        worker.wait_ready(90)
        replay = BackgroundReplay(settings, limit=2000)
        replay.start()
        report = replay.finish()
        wait_committed(settings, replay.publisher.delivered_offsets)
    finally:
        worker.stop()
    rows, distinct = report_line("broker-late", report.sent, settings)
    assert (rows, distinct) == (report.unique, report.unique)


@pytest.mark.xfail(strict=False, reason="known defect: offsets committed for the topic's old incarnation "
                   "can reach the new group, so the worker may skip the new topic's first events")
def test_broker_restart_with_recreated_topics_keeps_every_landed_file(settings_factory, tmp_path, own_broker):
    own_broker.start()
    settings = settings_factory(tmp_path, bootstrap_servers=own_broker.bootstrap, flush_interval_seconds=1.0)
    ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        before = BackgroundReplay(settings, limit=3000)
        before.start()
        before.finish()
        wait_committed(settings, before.publisher.delivered_offsets)
        landed_before = snapshot(settings)
        own_broker.stop()
        time.sleep(20 if FULL else 8)
        own_broker.start()                  # memory storage: the topics come back empty, offsets at 0
        ensure_topics(settings)
        after = BackgroundReplay(settings, limit=5000)   # the producer re-sends, and goes on
        after.start()
        report = after.finish()
        wait_committed(settings, after.publisher.delivered_offsets, timeout=180)
        assert worker.proc.poll() is None, "the worker recovered by itself"
    finally:
        worker.stop()
    landed_after = snapshot(settings)
    assert {p: landed_after.get(p) for p in landed_before} == landed_before   # none overwritten or lost
    assert len({p.rsplit("+", 1)[1] for p in landed_after}) == 2               # two topic incarnations
    # rows beyond the distinct ids are re-sends of events older than the dedupe horizon that first
    # landed from the topic's previous incarnation (readers dedupe by event_id). Known limitation:
    # offsets committed for the old incarnation can reach the new broker's group (Faust knows no
    # topic ids), and the worker then starts the new topic there, skipping the events below them
    # that had not landed before the restart — so this asserts progress, not exactly-once.
    _, distinct = report_line("broker-restart", report.sent, settings)
    assert distinct > 3000 and distinct >= report.unique - 100


def test_replay_to_an_unreachable_broker_fails_fast_and_clearly():
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "batch.cli", "replay", "--limit", "10",
                           "--bootstrap", address], capture_output=True, text=True, timeout=120,
                          env={"BOOKLOOP_DELIVERY_TIMEOUT_SECONDS": "5", "PATH": "/usr/bin:/bin"})
    assert done.returncode != 0
    assert address in done.stderr and "Error:" in done.stderr
    assert time.monotonic() - started < 30
