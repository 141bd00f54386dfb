"""Publish ModelUpdated events to the compacted model topic, keyed by `property/model_type`.

Callers publish only after the model file and its metadata are durable. `publish` waits for the
broker's acknowledgement, so a returned offset means the event is stored.
"""
from __future__ import annotations

import logging

from confluent_kafka import KafkaError, Message, Producer

from producers.publisher import producer_config
from schemas.codec import Codec, default_codec
from schemas.errors import DeliveryError
from schemas.settings import Settings

log = logging.getLogger(__name__)

MODEL_UPDATED = "bookloop.ModelUpdated"


def model_key(property_id: str, model_type: str) -> str:
    """The compaction key: the last event per key describes the live model of that pair."""
    return f"{property_id}/{model_type}"


class ModelEventPublisher:
    """Sends ModelUpdated records one at a time and waits for each to be acknowledged."""

    def __init__(self, settings: Settings, codec: Codec | None = None):
        self.settings = settings
        self.codec = codec or default_codec()
        self._producer = Producer(producer_config(settings))

    def publish(self, record: dict) -> int:
        """Encode (CodecError if the record does not fit the schema), send, return the offset."""
        value = self.codec.encode(record, MODEL_UPDATED)
        key = model_key(record["property_id"], record["model_type"]).encode("utf-8")
        outcome: dict = {}

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            outcome["error"], outcome["offset"] = err, msg.offset()

        self._producer.produce(self.settings.model_topic, value=value, key=key, on_delivery=on_delivery)
        self._producer.flush(self.settings.delivery_timeout_seconds)
        if not outcome or outcome["error"] is not None:
            self._producer.purge()  # an undelivered event must not go out later, out of order
            reason = outcome["error"].str() if outcome else "no acknowledgement in time"
            raise DeliveryError(f"ModelUpdated {key.decode()} {record['version']} was not delivered to "
                                f"{self.settings.model_topic!r} on {self.settings.bootstrap_servers}: {reason}")
        log.info("published ModelUpdated %s %s (deployed=%s) at %s[0]@%d", key.decode(), record["version"],
                 record["deployed"], self.settings.model_topic, outcome["offset"])
        return outcome["offset"]

    def close(self) -> None:
        self._producer.flush(0)  # every publish already waited for its acknowledgement
        self._producer.close()

    def __enter__(self) -> "ModelEventPublisher":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
