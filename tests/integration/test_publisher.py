"""OutcomePublisher, ensure_topics and EmbeddedBroker against the real embedded Tansu broker."""
from __future__ import annotations

import contextlib
import re
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from producers.embedded_broker import EmbeddedBroker, free_port
from producers.publisher import OutcomePublisher
from producers.replay_mapping import load_bookings, outcomes_from_bookings
from producers.topics import ensure_topics, topic_id
from schemas.codec import default_codec
from schemas.errors import BrokerUnavailable, DeliveryError, ValidationError
from schemas.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def real_outcomes() -> list[dict]:
    return outcomes_from_bookings(load_bookings(), limit=1000)


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 20.0,
               grace: float = 0.5) -> list[Message]:
    """Every message of `topic` from the beginning: stops `grace` s after `expected` arrived
    (to catch extras) or at `timeout`. Watermarks are not used: Tansu reports wrong ones."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        messages: list[Message] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None:
                assert message.error() is None, message.error()
                messages.append(message)
            if len(messages) >= expected:
                deadline = min(deadline, time.monotonic() + grace)
        return messages
    finally:
        consumer.close()


def test_published_outcomes_come_back_intact(settings_factory, real_outcomes):
    settings = settings_factory()
    ensure_topics(settings)
    started = time.perf_counter()
    with OutcomePublisher(settings) as publisher:
        for record in real_outcomes:
            publisher.publish(record)
        publisher.flush()
    elapsed = time.perf_counter() - started
    assert publisher.delivered == 1000 and publisher.failed == 0, f"took {elapsed:.2f}s"
    assert sum(offset + 1 for offset in publisher.delivered_offsets.values()) == 1000

    messages = read_topic(settings.bootstrap_servers, settings.outcomes_topic, 1000)
    assert len(messages) == 1000
    decoded = [default_codec().decode(m.value()) for m in messages]
    assert all(m.key().decode("utf-8") == d["property_id"] for m, d in zip(messages, decoded))
    assert sorted(d["event_id"] for d in decoded) == sorted(r["event_id"] for r in real_outcomes)
    by_id = {r["event_id"]: r for r in real_outcomes}
    assert all(d == by_id[d["event_id"]] for d in decoded)
    partitions_per_key: dict[bytes, set[int]] = {}
    for m in messages:
        partitions_per_key.setdefault(m.key(), set()).add(m.partition())
    assert all(len(p) == 1 for p in partitions_per_key.values())


def test_invalid_record_is_refused_before_sending(settings_factory, real_outcomes):
    settings = settings_factory()
    ensure_topics(settings)
    with OutcomePublisher(settings) as publisher:
        with pytest.raises(ValidationError) as refused:
            publisher.publish({**real_outcomes[0], "quoted_price": -1.0})
        assert refused.value.reason == "quoted_price_negative"
        publisher.publish(real_outcomes[1])
        publisher.flush()
    assert publisher.delivered == 1
    messages = read_topic(settings.bootstrap_servers, settings.outcomes_topic, 1, grace=1.0)
    assert [default_codec().decode(m.value())["event_id"] for m in messages] == [real_outcomes[1]["event_id"]]


def test_publish_raw_sends_bytes_as_given(settings_factory, topic_factory):
    settings = settings_factory(outcomes_topic=topic_factory("raw", partitions=2))
    with OutcomePublisher(settings) as publisher:
        publisher.publish_raw(b"not avro", b"city", headers=[("why", b"test")])
        publisher.publish_raw(None, None)
    messages = read_topic(settings.bootstrap_servers, settings.outcomes_topic, 2)
    assert sorted((m.value() or b"", m.key() or b"") for m in messages) == [(b"", b""), (b"not avro", b"city")]


def test_unreachable_broker_fails_flush_in_time(real_outcomes):
    address = f"127.0.0.1:{free_port()}"
    settings = Settings.from_env({}, bootstrap_servers=address, delivery_timeout_seconds=3.0)
    publisher = OutcomePublisher(settings)
    for record in real_outcomes[:5]:
        publisher.publish(record)
    started = time.monotonic()
    with pytest.raises((BrokerUnavailable, DeliveryError), match=address):
        publisher.flush(timeout=3.0)
    assert time.monotonic() - started < 15.0   # the 3 s timeout plus slack for a loaded machine: no hang
    with contextlib.suppress(BrokerUnavailable, DeliveryError):
        publisher.close(timeout=15.0)   # reports the messages that timed out after the first flush
    assert publisher.delivered == 0 and publisher.failed == 5


def test_ensure_topics_is_idempotent_and_compacts_models(settings_factory, broker):
    settings = settings_factory(partitions=3)
    assert sorted(ensure_topics(settings)) == sorted([settings.outcomes_topic, settings.dlq_topic,
                                                      settings.drift_topic, settings.model_topic,
                                                      settings.schema_topic])
    assert ensure_topics(settings) == []
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topics = admin.list_topics(timeout=10).topics
    assert len(topics[settings.outcomes_topic].partitions) == 3
    assert len(topics[settings.model_topic].partitions) == 1
    resource = ConfigResource("topic", settings.model_topic)
    config = admin.describe_configs([resource])[resource].result(timeout=10)
    assert config["cleanup.policy"].value == "compact"
    ids = {topic_id(settings, t) for t in (settings.outcomes_topic, settings.model_topic)}
    assert len(ids) == 2 and "0" not in ids
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids)  # URL-safe: usable in file names


def test_restart_keeps_the_port_and_loses_the_data():
    with EmbeddedBroker() as embedded:
        settings = Settings.from_env({}, bootstrap_servers=embedded.bootstrap,
                                     outcomes_topic="restart-check")
        ensure_topics(settings)
        embedded.restart()
        assert embedded.running and embedded.bootstrap == settings.bootstrap_servers
        admin = AdminClient({"bootstrap.servers": embedded.bootstrap})
        assert "restart-check" not in admin.list_topics(timeout=10).topics
    assert not embedded.running
    embedded.stop()  # idempotent
