"""Reading a topic to its current end without trusting high watermarks.

The embedded Tansu broker reports wrong high watermarks, so "the end" is: no message arrived for
`idle_seconds`. Consumers here use assign() with a group id only for stored offsets, never
subscribe(), so no group join (about half of session.timeout.ms on Tansu) delays them.
"""
from __future__ import annotations

import logging
from typing import Iterator

from confluent_kafka import Consumer, KafkaError, Message

from schemas.errors import BrokerUnavailable, ConfigError
from schemas.kafka_client import client_config
from schemas.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_IDLE_SECONDS = 1.5
_FATAL_CODES = {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError.TOPIC_AUTHORIZATION_FAILED}


def assign_only_consumer(settings: Settings, group_id: str) -> Consumer:
    """A consumer that never joins its group (assign() only) and commits only when told to."""
    return Consumer(client_config(settings, **{
        "group.id": group_id, "enable.auto.commit": False, "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest", "logger": log}))


def usable(msg: Message) -> bool:
    """True for a message with data; broken topics raise, other errors are logged (False)."""
    error = msg.error()
    if error is None:
        return True
    if error.fatal() or error.code() in _FATAL_CODES:
        raise ConfigError(f"cannot read {msg.topic()}: {error.str()}")
    log.warning("while reading %s: %s", msg.topic(), error.str())
    return False


def read_until_idle(consumer: Consumer, idle_seconds: float = DEFAULT_IDLE_SECONDS,
                    first_wait: float | None = None) -> Iterator[Message]:
    """Every message of the assigned partitions until none arrives for `idle_seconds` (for the
    first message: `first_wait`, default the same; an empty topic costs that much)."""
    wait = idle_seconds if first_wait is None else first_wait
    while True:
        msg = consumer.poll(wait)
        if msg is None:
            return
        wait = idle_seconds
        if usable(msg):
            yield msg


def partitions_of(consumer: Consumer, topic: str, timeout: float) -> list[int]:
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
    except Exception as exc:  # KafkaException for timeouts/transport
        raise BrokerUnavailable(f"cannot read the metadata of topic {topic!r}: {exc}") from exc
    info = metadata.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        reason = info.error.str() if info is not None and info.error is not None else "no partitions"
        raise ConfigError(f"topic {topic!r} is not readable ({reason}); create it with the worker "
                          "or `bookloop retrain`, which create bookloop's topics")
    return sorted(info.partitions)
