"""Exactly-once landing while workers are SIGKILLed, replaced and joined mid-replay."""
import time
from datetime import timedelta

from producers.publisher import OutcomePublisher
from producers.replay_mapping import load_bookings, outcomes_from_bookings
from producers.topics import ensure_topics
from chaos import (KILLS, REPLAY_RATE, BackgroundReplay, chaos_rng, crash_inside_flush, report_line,
                   start_worker, temp_files, wait_any_landing, wait_committed, wait_consuming)


def test_kill9_at_random_moments_loses_and_doubles_nothing(settings_factory, tmp_path):
    rng = chaos_rng("kill9")
    settings = settings_factory(tmp_path, flush_interval_seconds=1.0)
    ensure_topics(settings)
    replay = BackgroundReplay(settings, rate=REPLAY_RATE)
    replay.start()
    points = ["flush_after_temp_files", "flush_between_links"]
    in_flush = sorted(rng.sample(range(KILLS), 2))   # two of the kills hit inside a flush
    kills_in_flush = 0
    for n in range(KILLS):
        if n in in_flush:
            point = points[in_flush.index(n)]
            kills_in_flush += crash_inside_flush(settings, tmp_path, f"worker-{n}", point, rng.randint(2, 10))
        else:
            worker = start_worker(settings, tmp_path, f"worker-{n}")
            wait_consuming(worker)
            time.sleep(rng.uniform(0.0, 2.5))
            worker.kill()
    worker = start_worker(settings, tmp_path, "worker-last")
    report = replay.finish()
    try:
        wait_committed(settings, replay.publisher.delivered_offsets)
        metrics = worker.metrics()
    finally:
        worker.stop()
    rows, distinct = report_line("kill9", report.sent, settings)
    print(f"CHAOS kill9: {KILLS} kills, {kills_in_flush} of them inside a flush")
    assert kills_in_flush == 2
    assert (rows, distinct) == (report.unique, report.unique)
    assert temp_files(settings) == []                       # cleaned up on resume
    assert metrics["bookloop_conflicts_total"] == 0


def test_survivor_takes_over_and_a_joiner_rebalances(settings_factory, tmp_path):
    rng = chaos_rng("rebalance")
    settings = settings_factory(tmp_path, flush_interval_seconds=1.0)
    ensure_topics(settings)
    workers = [start_worker(settings, tmp_path, "first"), start_worker(settings, tmp_path, "second")]
    replay = BackgroundReplay(settings, rate=3000)
    replay.start()
    victim = wait_any_landing(workers)
    time.sleep(rng.uniform(0.5, 2.0))
    victim.kill()                                    # the survivor takes over its partitions
    survivor = next(w for w in workers if w is not victim)
    deadline = time.monotonic() + 60
    while "assigned [0, 1, 2, 3]" not in survivor.log_tail(100_000):   # took the victim's share
        assert time.monotonic() < deadline, survivor.log_tail()
        time.sleep(0.5)
    time.sleep(rng.uniform(1.0, 3.0))
    joiner = start_worker(settings, tmp_path, "third")   # a joiner: rebalance without a crash
    report = replay.finish()
    try:
        wait_committed(settings, replay.publisher.delivered_offsets)
    finally:
        survivor.stop()
        joiner.stop()
    rows, distinct = report_line("rebalance", report.sent, settings)
    assert (rows, distinct) == (report.unique, report.unique)


def test_resending_landed_events_after_a_crash_adds_no_rows(settings_factory, tmp_path):
    settings = settings_factory(tmp_path, flush_interval_seconds=1.0)
    ensure_topics(settings)
    worker = start_worker(settings, tmp_path, "before")
    first = BackgroundReplay(settings, limit=3000)
    first.start()
    report = first.finish()
    wait_committed(settings, first.publisher.delivered_offsets)
    worker.kill()
    worker = start_worker(settings, tmp_path, "after")
    # the producer retries its recent events: those within the dedupe horizon of the newest one
    outcomes = outcomes_from_bookings(load_bookings(), limit=3000)
    newest = max(o["timestamp"] for o in outcomes)
    recent = [o for o in outcomes if newest - o["timestamp"] < timedelta(days=settings.dedupe_horizon_days)]
    with OutcomePublisher(settings) as publisher:
        for outcome in recent:
            publisher.publish(outcome)
    try:
        wait_committed(settings, publisher.delivered_offsets)
        metrics = worker.metrics()
    finally:
        worker.stop()
    rows, distinct = report_line("resend-after-crash", report.sent + len(recent), settings)
    assert len(recent) > 100
    assert (rows, distinct) == (report.unique, report.unique)
    assert metrics["bookloop_duplicates_total"] == len(recent)
