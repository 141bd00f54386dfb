"""A handful of broken messages, each with the dead-letter reason the worker must give it."""
from __future__ import annotations

from datetime import datetime, timezone

from schemas.codec import Codec

_BASE = {"event_id": "", "property_id": "city", "timestamp": datetime(2016, 1, 4, tzinfo=timezone.utc),
         "quoted_price": 100.0, "accepted": True}


def invalid_messages(codec: Codec) -> list[tuple[str, bytes | None]]:
    """(expected DLQ reason, raw message value) pairs."""
    def encoded(**changes) -> bytes:
        return codec.encode({**_BASE, "event_id": f"invalid-{sorted(changes)}", **changes})

    return [
        ("bad_marker", b"this is not avro"),
        ("empty_message", b""),
        ("null_value", None),
        ("corrupt_body", codec.encode(_BASE)[:-3]),
        ("quoted_price_negative", encoded(quoted_price=-5.0)),
        ("quoted_price_not_finite", encoded(quoted_price=float("nan"))),
        ("timestamp_out_of_range", encoded(timestamp=datetime(1970, 1, 2, tzinfo=timezone.utc))),
        ("property_id_unsafe", encoded(property_id="../../etc")),
        ("property_id_empty", encoded(property_id="")),
    ]
