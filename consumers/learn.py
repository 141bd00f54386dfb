"""POST /learn: the seed's JSON batch -> validated Avro outcome events on the outcomes topic.

All or nothing per request: every item is converted, validated (schemas.validation, the rules the
producer library and the worker apply) and encoded before anything is sent; one bad item means
400 and nothing published. An item without `event_id` gets the id derived from its content, so a
client retrying the same POST publishes the same ids and the worker's dedupe drops the repeats.

Events go to the partition librdkafka's default partitioner (CRC32 of the key, as used by
OutcomePublisher) picks for the property id, so every publisher keeps one property in one Kafka
partition, where the worker dedupes it.
"""
from __future__ import annotations

import asyncio
import json
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka.errors import KafkaError
from faust.exceptions import NotReady, ProducerSendError

from consumers.rows import CONTEXT_FIELDS
from schemas.codec import Codec
from schemas.errors import BookloopError, BrokerUnavailable, CodecError, ValidationError
from schemas.validation import validate
from schemas.wire import WireCodec

OUTCOME_FIELDS = frozenset({"event_id", "property_id", "timestamp", "quoted_price", "accepted", "final_price",
                            "time_to_book", "comp_p10", "comp_p50", "comp_p90", "context", "features"})


class BadBatch(BookloopError):
    """The request body is not a usable batch (400). `code` is a short stable error code."""

    def __init__(self, code: str, message: str, errors: list[dict] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.errors = errors or []


@dataclass(frozen=True)
class Prepared:
    key: bytes
    value: bytes
    property_id: str
    event_id: str


def parse_batch(body: bytes) -> list:
    """The `batch` list of a request body, or BadBatch."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadBatch("malformed_json", f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadBatch("malformed_json", "the body nests JSON arrays or objects too deeply") from None
    if not isinstance(document, dict) or not isinstance(document.get("batch"), list):
        raise BadBatch("batch_missing", 'the body must be a JSON object {"batch": [outcome, ...]}')
    if not document["batch"]:
        raise BadBatch("batch_empty", "batch is empty; send at least one outcome")
    return document["batch"]


def prepare_batch(items: list, codec: Codec | WireCodec, now: datetime | None = None) -> list[Prepared]:
    """Every item validated and encoded, or BadBatch listing each invalid item (index, reason)."""
    prepared, errors = [], []
    for index, item in enumerate(items):
        try:
            record = validate(outcome_from_json(item), now=now)
            prepared.append(Prepared(record["property_id"].encode("utf-8"), codec.encode(record),
                                     record["property_id"], record["event_id"]))
        except ValidationError as exc:
            errors.append({"index": index, "reason": exc.reason, "message": exc.message})
        except CodecError as exc:
            errors.append({"index": index, "reason": exc.reason, "message": str(exc)})
    if errors:
        raise BadBatch("invalid_outcomes", f"{len(errors)} of {len(items)} outcomes are invalid; "
                       "nothing was published", errors)
    return prepared


def outcome_from_json(item: Any) -> dict:
    """A JSON outcome as the record validate() expects (ISO timestamp -> aware datetime)."""
    if not isinstance(item, dict):
        raise ValidationError("outcome_not_an_object", f"an outcome must be a JSON object, got {item!r:.80}")
    unknown = sorted(set(item) - OUTCOME_FIELDS)
    if unknown:
        raise ValidationError("unknown_field", f"unknown fields {unknown}; put extra model inputs in `features`")
    context = item.get("context")
    if isinstance(context, dict) and set(context) - set(CONTEXT_FIELDS):
        raise ValidationError("context_unknown_field",
                              f"unknown context fields {sorted(set(context) - set(CONTEXT_FIELDS))}; "
                              f"known: {list(CONTEXT_FIELDS)}")
    return {**item, "timestamp": parse_timestamp(item.get("timestamp"))}


def parse_timestamp(value: Any) -> Any:
    """ISO 8601 text with a timezone ("Z" or an offset) -> aware datetime; other values unchanged."""
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError("timestamp_invalid",
                              f"timestamp {value!r:.80} is not ISO 8601, e.g. 2024-10-23T14:30:00Z") from None
    if moment.utcoffset() is None:
        raise ValidationError("timestamp_no_timezone",
                              f"timestamp {value!r:.80} has no timezone; add Z (UTC) or an offset like +02:00")
    return moment


def partition_for(key: bytes, partitions: int) -> int:
    """The partition librdkafka's default (consistent_random) partitioner picks for a non-empty key."""
    return zlib.crc32(key) % partitions


async def publish(app: Any, topic: str, batch: list[Prepared], timeout: float) -> None:
    """Send with the Faust app's producer and wait for the broker's acknowledgement of every event;
    BrokerUnavailable when that fails or takes longer than `timeout` seconds."""
    partitions = app.consumer.topic_partitions(topic)
    if not partitions:
        raise BrokerUnavailable(f"the worker has no metadata for topic {topic!r} yet (still joining the group)")

    async def send_all() -> None:
        pending = [await app.producer.send(topic, item.key, item.value, partition_for(item.key, partitions),
                                           None, None) for item in batch]
        await asyncio.gather(*pending)

    try:
        await asyncio.wait_for(send_all(), timeout)
    except asyncio.TimeoutError:
        raise BrokerUnavailable(f"Kafka did not acknowledge {len(batch)} events within {timeout:g} s") from None
    except (KafkaError, ProducerSendError, NotReady) as exc:
        raise BrokerUnavailable(f"Kafka refused the events: {exc!r}") from None


def summary(batch: list[Prepared]) -> dict:
    """The seed's success response."""
    properties = len({item.property_id for item in batch})
    return {"success": True, "processed": len(batch),
            "message": f"Stored {len(batch)} outcomes across {properties} properties"}
