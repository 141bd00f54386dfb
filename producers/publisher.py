"""Publish booking outcomes to Kafka: validated, Avro-encoded, keyed by property, idempotent."""
from __future__ import annotations

import functools
import logging
import time

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from producers.schema_topic import announce
from schemas.codec import Codec, default_codec
from schemas.errors import BookloopError, BrokerUnavailable, DeliveryError
from schemas.kafka_client import client_config
from schemas.settings import Settings
from schemas.validation import validate as validate_outcome
from schemas.wire import WireCodec

log = logging.getLogger(__name__)

_REPORTED_REASONS = 5
_QUEUE_FULL_WAIT = 0.1


@functools.cache
def lz4_supported() -> bool:
    """Whether this librdkafka build accepts compression.type=lz4 (no connection is made)."""
    try:
        Producer({"compression.type": "lz4", "log_level": 0})
        return True
    except KafkaException:
        return False


def producer_config(settings: Settings) -> dict:
    return client_config(settings, **{
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "compression.type": "lz4" if lz4_supported() else "none",
        "message.timeout.ms": int(settings.delivery_timeout_seconds * 1000),
        "logger": log,
    })


class OutcomePublisher:
    """Sends outcomes to `settings.outcomes_topic`; `flush` reports any message the broker did not take.
    With SCHEMA_REGISTRY_URL set it writes the Confluent wire format, else Avro single-object encoding."""

    def __init__(self, settings: Settings, codec: Codec | None = None, validate: bool = True):
        self.settings = settings
        self.codec = codec or default_codec()
        self.validate = validate
        self.delivered = 0
        self.delivered_offsets: dict[int, int] = {}
        self.failed = 0
        self.failure_reasons: list[str] = []
        self._reported_failures = 0
        self._last_client_error: KafkaError | None = None
        self._closed = False
        self.wire = WireCodec.for_topic(settings, settings.outcomes_topic, self.codec)
        if self.wire.registry is not None:
            self.wire.schema_id()   # look up or register now: a wrong registry fails here, clearly
        self._producer = Producer({**producer_config(settings), "error_cb": self._on_client_error})
        if self.wire.registry is None:   # the registry already tells consumers the writer schema
            announce(self._producer, settings, self.codec)

    def publish(self, record: dict) -> None:
        """Validate (ValidationError before anything is sent), encode and produce one outcome."""
        if self.validate:
            record = validate_outcome(record)
        value = self.wire.encode(record)
        property_id = record.get("property_id")
        self._produce(value, property_id.encode("utf-8") if isinstance(property_id, str) else None)

    def publish_raw(self, value: bytes | None, key: bytes | None, headers=None) -> None:
        """Produce arbitrary bytes to the outcomes topic (tests and demos of bad input)."""
        self._produce(value, key, headers)

    def _produce(self, value: bytes | None, key: bytes | None, headers=None) -> None:
        if self._closed:
            raise BookloopError("publisher is closed; create a new OutcomePublisher")
        deadline = time.monotonic() + self.settings.delivery_timeout_seconds + 5
        while True:
            try:
                self._producer.produce(self.settings.outcomes_topic, value=value, key=key,
                                       headers=headers, on_delivery=self._on_delivery)
                break
            except BufferError:  # local queue full: serve delivery reports to make room
                if time.monotonic() > deadline:
                    raise self._unavailable("the local send queue stayed full") from None
                self._producer.poll(_QUEUE_FULL_WAIT)
        self._producer.poll(0)

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed += 1
            reason = f"{err.str()} ({err.name()})"
            if reason not in self.failure_reasons and len(self.failure_reasons) < _REPORTED_REASONS:
                self.failure_reasons.append(reason)
            return
        self.delivered += 1
        self._last_client_error = None
        partition, offset = msg.partition(), msg.offset()
        if offset > self.delivered_offsets.get(partition, -1):
            self.delivered_offsets[partition] = offset

    def _on_client_error(self, err: KafkaError) -> None:
        self._last_client_error = err  # librdkafka already logs it through `log`

    def flush(self, timeout: float | None = None) -> None:
        """Wait for every queued message; DeliveryError/BrokerUnavailable if any failed or is still queued."""
        timeout = self.settings.delivery_timeout_seconds if timeout is None else timeout
        queued = self._producer.flush(timeout)
        new_failures = self.failed - self._reported_failures
        if not queued and not new_failures:
            return
        self._reported_failures = self.failed
        reasons = "; ".join(self.failure_reasons) or "none reported"
        detail = f"{new_failures} failed, {queued} still queued after {timeout:g}s; reasons: {reasons}"
        if self._broker_unreachable():
            raise self._unavailable(detail)
        raise DeliveryError(f"messages to {self.settings.outcomes_topic!r} on "
                            f"{self.settings.bootstrap_servers} were not delivered: {detail}")

    def _broker_unreachable(self) -> bool:
        err = self._last_client_error
        return err is not None and err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT)

    def _unavailable(self, detail: str) -> BrokerUnavailable:
        last = self._last_client_error.str() if self._last_client_error else "no client error reported"
        return BrokerUnavailable(f"Kafka at {self.settings.bootstrap_servers} is unreachable or not "
                                 f"acknowledging ({last}): {detail}")

    def close(self, timeout: float | None = None) -> None:
        """Flush (raising like `flush`), then release the producer. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self.flush(timeout)
        finally:
            self._producer.purge()  # drop whatever flush could not deliver so close() cannot block
            self._producer.flush(0)
            self._producer.close()

    def __enter__(self) -> "OutcomePublisher":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except BookloopError as close_error:  # keep the original exception; log the flush failure
            log.error("while handling %s, closing the publisher failed: %s", exc_type.__name__, close_error)
