"""From raw message bytes to a validated outcome record, or a reason to dead-letter it.

`codec` is a WireCodec in the worker (Avro single-object and Confluent wire format, per message)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.codec import Codec
from schemas.errors import CodecError, ValidationError
from schemas.validation import validate
from schemas.wire import WireCodec


@dataclass(frozen=True)
class Rejected:
    reason: str   # stable code, goes to the DLQ `reason` header and the metric label
    detail: str   # human explanation, goes to the DLQ `error` header and the log


def read_outcome(value: bytes | None, codec: Codec | WireCodec, max_bytes: int,
                 now: datetime | None = None) -> dict | Rejected:
    if value is None:
        return Rejected("null_value", "tombstone (null value) on the outcomes topic")
    if len(value) > max_bytes:
        return Rejected("message_too_large", f"{len(value)} bytes > limit {max_bytes}")
    try:
        return validate(codec.decode(value), now=now)
    except CodecError as exc:
        return Rejected(exc.reason, str(exc))
    except ValidationError as exc:
        return Rejected(exc.reason, exc.message)
