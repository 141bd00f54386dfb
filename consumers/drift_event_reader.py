"""Unhandled DriftDetected events, for `bookloop retrain --on-drift`.

The reader starts at its group's committed offsets (the beginning the first time), reads the
drift topic to its end, and commits only when told to — after the retrain they asked for went
well — so a failed early retrain is asked for again by the next run.
"""
from __future__ import annotations

import logging

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from consumers.topic_tail import DEFAULT_IDLE_SECONDS, assign_only_consumer, partitions_of, read_until_idle
from schemas.codec import default_codec
from schemas.errors import BookloopError
from schemas.settings import Settings

log = logging.getLogger(__name__)

DRIFT_DETECTED = "bookloop.DriftDetected"
DRIFT_GROUP = "bookloop-retrain-on-drift"


class DriftEventReader:
    def __init__(self, settings: Settings, group_id: str = DRIFT_GROUP,
                 idle_seconds: float = DEFAULT_IDLE_SECONDS):
        self.settings = settings
        self.idle_seconds = idle_seconds
        self._consumer = assign_only_consumer(settings, group_id)
        self._next: dict[int, int] = {}

    def read(self) -> list[dict]:
        """The DriftDetected records after the committed offsets (undecodable ones are logged)."""
        topic = self.settings.drift_topic
        timeout = self.settings.delivery_timeout_seconds
        wanted = [TopicPartition(topic, p) for p in partitions_of(self._consumer, topic, timeout)]
        committed = self._consumer.committed(wanted, timeout=timeout)
        self._consumer.assign([TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                               for tp in committed])
        records = []
        for msg in read_until_idle(self._consumer, self.idle_seconds):
            self._next[msg.partition()] = msg.offset() + 1
            try:
                records.append(default_codec().decode(msg.value(), expect=DRIFT_DETECTED))
            except BookloopError as exc:
                log.error("skipping undecodable drift event %s[%d]@%d: %s", topic, msg.partition(),
                          msg.offset(), exc)
        return records

    def commit(self) -> None:
        """Mark everything `read` returned as handled."""
        if self._next:
            offsets = [TopicPartition(self.settings.drift_topic, p, o) for p, o in self._next.items()]
            self._consumer.commit(offsets=offsets, asynchronous=False)

    def close(self) -> None:
        self._consumer.close()
