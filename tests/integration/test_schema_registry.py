"""Schema Registry mode and embedded mode on one topic, through a real broker and worker.

The registry is the client library's in-memory one (`mock://`), whose state lives in one process:
so the registry-mode producer here is the worker's own POST /learn (it registers the schema in the
worker's registry, writes the Confluent wire format to Kafka, and the worker's consumer fetches
the writer schema by id from that registry), beside an embedded-mode OutcomePublisher in the test
process writing single-object encoding. Both land; a Confluent message with an id the registry
does not know is dead-lettered as `unknown_schema_id`. A real registry runs in docker-compose.yml.
"""
import json
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime

import pytest
from confluent_kafka import Consumer, TopicPartition

from consumers.process import WorkerProcess
from consumers.storage import OutcomesStorage
from producers.embedded_broker import free_port
from producers.publisher import OutcomePublisher
from producers.topics import ensure_topics
from schemas.kafka_client import client_config
from schemas.wire import WireCodec

pytestmark = pytest.mark.integration
LEARN = {"batch": [{"event_id": "via-registry", "property_id": "city", "timestamp": "2016-05-01T10:00:00Z",
                    "quoted_price": 120.0, "accepted": True, "final_price": 110.0}]}
EMBEDDED = {"event_id": "via-embedded", "property_id": "city", "timestamp": "2016-05-01T11:00:00Z",
            "quoted_price": 90.0, "accepted": False}


def post_learn(base: str, timeout: float = 60) -> dict:
    """POST /learn until the worker holds its partitions (503 while it joins the group)."""
    deadline = time.monotonic() + timeout
    while True:
        request = urllib.request.Request(f"{base}/learn", data=json.dumps(LEARN).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            assert error.code == 503 and time.monotonic() < deadline, error.read()
            time.sleep(0.5)


def read_all(settings, topic: str, count: int, timeout: float = 30) -> list:
    consumer = Consumer(client_config(settings, **{"group.id": f"reader-{uuid.uuid4().hex}",
                                                   "enable.auto.commit": False}))
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    messages, deadline = [], time.monotonic() + timeout
    try:
        while len(messages) < count and time.monotonic() < deadline:
            messages += [m for m in consumer.consume(10, timeout=0.5) if m.error() is None]
    finally:
        consumer.close()
    return messages


def test_registry_and_embedded_producers_share_a_topic_and_both_land(settings_factory, tmp_path):
    settings = settings_factory(tmp_path, flush_interval_seconds=1.0, partitions=2,
                                schema_registry_url=f"mock://e2e-{uuid.uuid4().hex}")
    ensure_topics(settings)
    embedded = settings.replace(schema_registry_url="")
    with OutcomePublisher(embedded) as publisher:                     # embedded mode: C3 01 + fingerprint
        publisher.publish({**EMBEDDED, "timestamp": datetime.fromisoformat(EMBEDDED["timestamp"])})
        publisher.publish_raw(b"\x00\x00\x0f\x42\x40" + b"\x02", key=b"city")   # schema id 1000000: unknown
    worker = WorkerProcess(settings.replace(web_port=free_port()), tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        answer = post_learn(f"http://{settings.web_host}:{worker.settings.web_port}")
        assert answer["processed"] == 1
        storage, deadline = OutcomesStorage(settings.data_dir), time.monotonic() + 60
        while len(storage.get_outcomes("city")) < 2:
            assert time.monotonic() < deadline, worker.log_tail()
            time.sleep(0.3)
        metrics = worker.metrics()
    finally:
        worker.stop()
    rows = storage.get_outcomes("city").set_index("event_id")
    assert rows.loc["via-registry", "final_price"] == 110.0 and rows.loc["via-embedded", "quoted_price"] == 90.0
    first_bytes = sorted(m.value()[:2] for m in read_all(settings, settings.outcomes_topic, 3))
    assert first_bytes[0][:1] == b"\x00" and first_bytes[1][:1] == b"\x00" and first_bytes[2] == b"\xc3\x01"
    [dead] = read_all(settings, settings.dlq_topic, 1)
    assert dict(dead.headers())["reason"] == b"unknown_schema_id"
    assert metrics["bookloop_dead_lettered_total"] == 1 and metrics["bookloop_events_landed_total"] == 2


def test_the_publisher_in_registry_mode_writes_confluent_frames_through_kafka(settings_factory, tmp_path):
    settings = settings_factory(tmp_path, schema_registry_url=f"mock://publisher-{uuid.uuid4().hex}")
    ensure_topics(settings)
    with OutcomePublisher(settings) as publisher:   # registers the schema (same process: same mock registry)
        publisher.publish({**EMBEDDED, "timestamp": datetime.fromisoformat(EMBEDDED["timestamp"])})
        schema_id = publisher.wire.schema_id()
    [message] = read_all(settings, settings.outcomes_topic, 1)
    assert message.value()[:5] == b"\x00" + schema_id.to_bytes(4, "big") and message.key() == b"city"
    assert WireCodec.for_topic(settings, settings.outcomes_topic).decode(message.value())["event_id"] == "via-embedded"
    assert read_all(settings, settings.schema_topic, 1, timeout=2) == []   # the registry replaces announcements
