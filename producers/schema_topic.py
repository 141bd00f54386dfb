"""Writer schemas announced on Kafka: the embedded mode's stand-in for a schema registry.

Single-object encoding names the writer schema by fingerprint only. Every OutcomePublisher
announces the schema it writes with on a compacted topic (key: fingerprint hex, value: the
schema's Parsing Canonical Form), and a worker that meets a fingerprint it does not know reads
that topic and learns it — so a newer producer may add optional fields before the worker is
upgraded, and the worker's reader schema resolves them away (older producers' schemas ship in
schemas/history/). With Schema Registry in production the Confluent wire format does this job.
"""
from __future__ import annotations

import json
import logging
import time

from confluent_kafka import Consumer, Producer, TopicPartition

from schemas.codec import DEFAULT_SCHEMA, Codec
from schemas.kafka_client import client_config
from schemas.settings import Settings

log = logging.getLogger(__name__)


def announce(producer: Producer, settings: Settings, codec: Codec, schema: str = DEFAULT_SCHEMA) -> None:
    """Queue the announcement; a failure is logged and never fails the caller's own messages."""
    def report(err, _msg) -> None:
        if err is not None:
            log.warning("could not announce schema %s on %s: %s", schema, settings.schema_topic, err)

    producer.produce(settings.schema_topic, key=codec.fingerprint(schema).hex().encode(),
                     value=codec.canonical_form(schema).encode(), on_delivery=report)


def read_announced(settings: Settings, timeout: float = 5.0, idle: float = 0.5) -> list[dict]:
    """Every schema announced so far (reads the topic from the start until it goes quiet)."""
    consumer = Consumer(client_config(settings, **{"group.id": "bookloop-schemas",
                                                   "enable.auto.commit": False, "logger": log}))
    consumer.assign([TopicPartition(settings.schema_topic, 0, 0)])
    schemas, deadline, quiet_since = [], time.monotonic() + timeout, time.monotonic()
    try:
        while time.monotonic() < deadline and time.monotonic() - quiet_since < idle:
            for msg in consumer.consume(100, timeout=0.1):
                quiet_since = time.monotonic()
                if msg.error() is None and msg.value():
                    schemas.append(json.loads(msg.value()))
    finally:
        consumer.close()
    return schemas
