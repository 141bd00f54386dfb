"""Hostile and broken input: each message gets its exact dead-letter reason, valid ones land."""
import struct
import time
from datetime import datetime, timezone

import pyarrow.dataset as ds
from confluent_kafka import Consumer, Producer, TopicPartition

from chaos import report_line, start_worker, wait_committed
from consumers.paths import outcomes_root
from producers.topics import ensure_topics
from schemas.codec import MARKER, Codec

T = datetime(2016, 5, 1, 12, tzinfo=timezone.utc)
NON_ASCII = "hôtel-zürich-東京"


def outcome(event_id, **changes):
    return {"event_id": event_id, "property_id": "city", "timestamp": T, "quoted_price": 120.0,
            "accepted": True, **changes}


def hostile_messages(codec: Codec) -> list[tuple[str, bytes | None]]:
    good = codec.encode(outcome("template"))
    unknown = MARKER + struct.pack("<Q", 0x1234567890ABCDEF) + good[10:]
    model = codec.encode({"version": "v1", "property_id": "city", "model_type": "conversion",
                          "metrics": {}, "artifact_uri": "x", "artifact_sha256": "0" * 64,
                          "previous_version": None, "deployed": True, "trigger": "manual",
                          "created_at": T}, "bookloop.ModelUpdated")
    return [   # encode does not validate: the worker must
        ("corrupt_body", good[:-4]),
        ("bad_marker", b"\xc3\x02" + good[2:]),
        ("unknown_fingerprint", unknown),
        ("wrong_schema", model),
        ("empty_message", b""),
        ("null_value", None),
        ("quoted_price_not_finite", codec.encode(outcome("nan", quoted_price=float("nan")))),
        ("quoted_price_not_finite", codec.encode(outcome("inf", quoted_price=float("inf")))),
        ("quoted_price_negative", codec.encode(outcome("neg", quoted_price=-1.0))),
        ("timestamp_out_of_range", codec.encode(outcome("old", timestamp=datetime(1970, 1, 1, tzinfo=timezone.utc)))),
        ("timestamp_out_of_range", codec.encode(outcome("future", timestamp=datetime(2100, 1, 1, tzinfo=timezone.utc)))),
        ("property_id_empty", codec.encode(outcome("noprop", property_id=""))),
        ("property_id_unsafe", codec.encode(outcome("dots", property_id="../etc"))),
        ("property_id_unsafe", codec.encode(outcome("slash", property_id="a/b"))),
        ("property_id_unsafe", codec.encode(outcome("nul", property_id="a\x00b"))),
        ("property_id_too_long", codec.encode(outcome("long", property_id="p" * 10_000))),
        ("message_too_large", codec.encode(outcome("huge", features={"blob": "x" * 5_000_000}))),
    ]


def read_dlq(settings, expected, timeout=60):
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": "dlq-check",
                         "enable.auto.commit": False, "fetch.message.max.bytes": 10_000_000})
    consumer.assign([TopicPartition(settings.dlq_topic, p, 0) for p in range(settings.partitions)])
    found, deadline = [], time.monotonic() + timeout
    while len(found) < expected and time.monotonic() < deadline:
        for msg in consumer.consume(100, timeout=0.5):
            if not msg.error():
                found.append(dict(msg.headers()))
    consumer.close()
    return found


def test_every_hostile_message_is_dead_lettered_with_its_reason(settings_factory, tmp_path):
    settings = settings_factory(tmp_path, flush_interval_seconds=1.0)
    ensure_topics(settings)
    codec = Codec()
    hostile = hostile_messages(codec)
    valid = [outcome(f"ok-{i}", quoted_price=100.0 + i) for i in range(20)]
    valid.append(outcome("ok-intl", property_id=NON_ASCII))
    conflict = outcome("ok-0", quoted_price=999.0)   # same id as a valid one, other content
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "message.max.bytes": 10_000_000,
                         "enable.idempotence": True})
    delivered: dict[int, int] = {}

    def note(err, msg):
        assert err is None, err
        delivered[msg.partition()] = max(delivered.get(msg.partition(), -1), msg.offset())

    worker = start_worker(settings, tmp_path, "worker")
    try:
        for i, (_, value) in enumerate(hostile):   # interleave bad and good in the same batches
            producer.produce(settings.outcomes_topic, value=value, key=b"city", on_delivery=note)
            producer.produce(settings.outcomes_topic, value=codec.encode(valid[i]),
                             key=valid[i]["property_id"].encode(), on_delivery=note)
        for record in valid[len(hostile):] + [conflict]:
            producer.produce(settings.outcomes_topic, value=codec.encode(record),
                             key=record["property_id"].encode(), on_delivery=note)
        assert producer.flush(30) == 0
        wait_committed(settings, delivered)
        metrics = worker.metrics()
    finally:
        worker.stop()

    dead = read_dlq(settings, len(hostile))
    assert sorted(h["reason"].decode() for h in dead) == sorted(reason for reason, _ in hostile)
    assert all(h["source_topic"].decode() == settings.outcomes_topic for h in dead)
    table = ds.dataset(outcomes_root(settings.data_dir), format="parquet", partitioning="hive").to_table()
    rows = {r["event_id"]: r for r in table.select(["event_id", "property_id", "quoted_price"]).to_pylist()}
    assert set(rows) == {v["event_id"] for v in valid}
    assert rows["ok-intl"]["property_id"] == NON_ASCII
    assert rows["ok-0"]["quoted_price"] == 100.0                     # the first version won
    assert metrics["bookloop_conflicts_total"] == 1
    assert metrics["bookloop_dead_lettered_total"] == len(hostile)
    assert not list(outcomes_root(settings.data_dir).rglob("*etc*"))  # nothing escaped the store
    report_line("hostile", len(hostile) + len(valid) + 1, settings, dead=len(dead))
