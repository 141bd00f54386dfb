"""The main job end to end against the real embedded broker: full real replay, DLQ, restart."""
import time

import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from confluent_kafka import Consumer, TopicPartition

from consumers.paths import outcomes_root
from consumers.process import WorkerProcess
from producers.embedded_broker import free_port
from producers.invalid_examples import invalid_messages
from producers.publisher import OutcomePublisher
from producers.replay import replay_dataset
from producers.replay_mapping import DEFAULT_DATASET
from schemas.codec import default_codec

pytestmark = pytest.mark.integration


def wait_settled(worker, expected, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = worker.metrics()
        settled = sum(m.get(k, 0) for k in ("bookloop_events_landed_total", "bookloop_duplicates_total",
                                            "bookloop_redelivered_total", "bookloop_dead_lettered_total"))
        if settled >= expected and m.get("bookloop_buffered_events", 0) == 0:
            return m
        time.sleep(0.5)
    raise AssertionError(f"not settled: {worker.metrics()}\n{worker.log_tail()}")


def read_dlq(settings, expected, timeout=30):
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": "dlq-reader",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(settings.dlq_topic, p, 0) for p in range(settings.partitions)])
    found, deadline = [], time.monotonic() + timeout
    while len(found) < expected and time.monotonic() < deadline:
        for msg in consumer.consume(100, timeout=0.5):
            if not msg.error():
                found.append((dict(msg.headers()), msg.value()))
    consumer.close()
    return found


def landed_table(settings):
    return ds.dataset(outcomes_root(settings.data_dir), format="parquet",
                      partitioning="hive").to_table(columns=["event_id", "property_id", "accepted"])


def test_full_real_replay_lands_every_booking_once(settings_factory, tmp_path):
    settings = settings_factory(tmp_path, flush_interval_seconds=1.0, web_port=free_port())
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        broken = invalid_messages(default_codec())
        with OutcomePublisher(settings) as publisher:
            report = replay_dataset(settings, resend_fraction=0.05, publisher=publisher)
            for _, value in broken:
                publisher.publish_raw(value, key=b"invalid")
        produced = report.sent + len(broken)
        metrics = wait_settled(worker, produced)
    finally:
        worker.stop()

    bookings = pd.read_csv(DEFAULT_DATASET)
    table = landed_table(settings)
    assert report.unique == len(bookings) == 119_390
    assert report.resent == round(0.05 * 119_390)
    assert table.num_rows == 119_390
    assert pc.count_distinct(table.column("event_id")).as_py() == 119_390
    counts = dict(zip(*[c.to_pylist() for c in pc.value_counts(table.column("property_id")).flatten()]))
    assert counts == {"city": int((bookings.hotel == "City Hotel").sum()),
                      "resort": int((bookings.hotel == "Resort Hotel").sum())}
    assert pc.sum(table.column("accepted")).as_py() == int((bookings.is_canceled == 0).sum())
    assert metrics["bookloop_dead_lettered_total"] == len(broken)
    assert metrics["bookloop_duplicates_total"] == report.resent
    log_text = (tmp_path / "worker.log").read_text(encoding="utf-8")
    assert "decode helper" in log_text and "\x1b" not in log_text   # no terminal codes in log files

    dead = read_dlq(settings, len(broken))
    assert sorted(h["reason"].decode() for h, _ in dead) == sorted(r for r, _ in broken)
    assert {v for h, v in dead if h["reason"] == b"bad_marker"} == {b"this is not avro"}
    assert all(h["source_topic"].decode() == settings.outcomes_topic for h, _ in dead)

    # a second worker in a new group re-consumes the whole topic from offset 0: no row is added
    again = settings.replace(group_id=settings.group_id + "-again", web_port=free_port())
    worker = WorkerProcess(again, tmp_path / "worker2.log").start()
    try:
        worker.wait_ready()
        metrics = wait_settled(worker, produced)
    finally:
        worker.stop()
    assert landed_table(settings).num_rows == 119_390
    assert metrics["bookloop_events_landed_total"] == 0
    assert metrics["bookloop_redelivered_total"] + metrics["bookloop_duplicates_total"] == report.sent
