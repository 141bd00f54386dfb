"""The rules every booking outcome must meet, applied alike by the producer and the consumer.

`validate` returns the record, with `event_id` derived from the content when the writer had
none, or raises ValidationError whose `reason` is a short stable code (the dead-letter reason).
"""
from __future__ import annotations

import hashlib
import json
import math
import numbers
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from schemas.errors import ValidationError

MIN_TIMESTAMP = datetime(2000, 1, 1, tzinfo=timezone.utc)
MAX_FUTURE = timedelta(days=2)  # timestamp must be <= now + MAX_FUTURE
MAX_ID_CHARS = 128
MAX_ID_BYTES = 240  # UTF-8 bytes; keeps a property_id usable as a file or directory name
MAX_FEATURE_KEY_CHARS = 128

AMOUNT_FIELDS = ("quoted_price", "final_price", "comp_p10", "comp_p50", "comp_p90")
CONTEXT_NUMBER_FIELDS = ("day_of_week", "temperature", "is_holiday", "occupancy_rate",
                         "lead_time", "length_of_stay", "is_refundable")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MILLISECOND = timedelta(milliseconds=1)
# Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Path separators, control characters, lone surrogates (not encodable as UTF-8) and "..".
_UNSAFE_ID = re.compile(r"[/\\\x00-\x1f\x7f-\x9f\ud800-\udfff]|\.\.")


def _is_real(value: Any) -> bool:
    """isinstance(value, numbers.Real), without the ABC check for the plain int and float of
    nearly every value (the check runs for every number of every event)."""
    return type(value) in (float, int) or isinstance(value, numbers.Real)


def validate(record: dict, now: datetime | None = None) -> dict:
    """`record` if it keeps every rule, else ValidationError.

    Returns a shallow copy when something is filled in (a derived event_id, or int millis
    turned into an aware datetime); the input is never modified.
    """
    check_property_id(record.get("property_id"))
    timestamp = _checked_timestamp(record.get("timestamp"), now)
    _check_amounts(record)
    _check_accepted(record.get("accepted"))
    _check_time_to_book(record.get("time_to_book"))
    _check_context(record.get("context"))
    _check_features(record.get("features"))
    missing_id = record.get("event_id") in (None, "")
    if missing_id or timestamp is not record["timestamp"]:
        record = {**record, "timestamp": timestamp}
        if missing_id:
            record["event_id"] = derive_event_id(record)
    _check_event_id(record["event_id"])
    return record


def derive_event_id(record: dict) -> str:
    """Deterministic id of the record's content: every field but event_id, as canonical JSON.

    Absent fields equal None ones, datetimes equal their epoch millis, 3.0 equals 3 and True
    equals 1 (as after an Avro round trip), so the same outcome gets the same id whether it
    comes from a producer's dict or from a decoded message.
    """
    content = _canonical({k: v for k, v in record.items() if k != "event_id"})
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        items = ((key, _canonical(item)) for key, item in value.items())
        return {key: item for key, item in items if item is not None and item != {}}
    if isinstance(value, datetime):
        return (value - _EPOCH) // _MILLISECOND
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if _is_real(value):
        value = float(value)
        return int(value) if value.is_integer() else value
    return value


def check_property_id(value: Any) -> None:
    if value is None or value == "":
        raise ValidationError("property_id_empty", "property_id is missing or empty; set the hotel id")
    if not isinstance(value, str):
        raise ValidationError("property_id_not_a_string",
                              f"property_id must be a string, got {type(value).__name__}")
    if value.isspace():
        raise ValidationError("property_id_empty", "property_id is only whitespace; set the hotel id")
    if value == "." or _UNSAFE_ID.search(value):
        raise ValidationError(
            "property_id_unsafe",
            f"property_id {value!r:.80} contains '/', '\\', '..', a control character or a lone "
            "surrogate, or is '.'; it names directories in the data store")
    if len(value) > MAX_ID_CHARS or len(value.encode("utf-8")) > MAX_ID_BYTES:
        raise ValidationError(
            "property_id_too_long",
            f"property_id has {len(value)} characters / {len(value.encode('utf-8'))} UTF-8 bytes; "
            f"the limit is {MAX_ID_CHARS} characters and {MAX_ID_BYTES} bytes")


def _check_event_id(value: Any) -> None:
    if not isinstance(value, str) or len(value) > MAX_ID_CHARS or _CONTROL.search(value):
        raise ValidationError(
            "event_id_invalid",
            f"event_id must be a string of at most {MAX_ID_CHARS} characters without control "
            f"characters, got {value!r:.80}")


def _checked_timestamp(value: Any, now: datetime | None) -> datetime:
    if value is None:
        raise ValidationError("timestamp_missing", "timestamp is missing; set the event time (UTC)")
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        try:
            value = _EPOCH + int(value) * _MILLISECOND
        except OverflowError:
            raise ValidationError("timestamp_out_of_range",
                                  f"timestamp {value} ms is far outside any date") from None
    elif not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValidationError(
            "timestamp_invalid",
            f"timestamp must be a timezone-aware datetime or epoch milliseconds, got {value!r:.80}")
    latest = (now or datetime.now(timezone.utc)) + MAX_FUTURE
    if not MIN_TIMESTAMP <= value <= latest:
        raise ValidationError(
            "timestamp_out_of_range",
            f"timestamp {value.isoformat()} is not between {MIN_TIMESTAMP.isoformat()} and "
            f"{latest.isoformat()} (now + {MAX_FUTURE}); check the producer's clock and units")
    return value


def _check_amounts(record: dict) -> None:
    if record.get("quoted_price") is None:
        raise ValidationError("quoted_price_missing", "quoted_price is missing; set the quoted price")
    for name in AMOUNT_FIELDS:
        value = record.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not _is_real(value):
            raise ValidationError(f"{name}_not_a_number", f"{name} must be a number, got {value!r:.80}")
        if not math.isfinite(value):
            raise ValidationError(f"{name}_not_finite", f"{name} must be finite, got {value}")
        if value < 0:
            raise ValidationError(f"{name}_negative", f"{name} must be >= 0, got {value}")


def _check_accepted(value: Any) -> None:
    if not isinstance(value, bool):
        raise ValidationError("accepted_invalid", f"accepted must be True or False, got {value!r:.80}")


def _check_time_to_book(value: Any) -> None:
    if value is None:
        return
    is_number = _is_real(value) and not isinstance(value, bool)
    if not (is_number and math.isfinite(value) and value >= 0):
        raise ValidationError("time_to_book_invalid",
                              f"time_to_book must be a finite number >= 0, got {value!r:.80}")


def _check_context(context: Any) -> None:
    if context is None:
        return
    if not isinstance(context, dict):
        raise ValidationError("context_not_a_record",
                              f"context must be a dict or None, got {type(context).__name__}")
    for name in CONTEXT_NUMBER_FIELDS:
        value = context.get(name)
        if value is None:
            continue
        if not _is_real(value):
            raise ValidationError(f"context_{name}_not_a_number",
                                  f"context.{name} must be a number, got {value!r:.80}")
        if not math.isfinite(value):
            raise ValidationError(f"context_{name}_not_finite",
                                  f"context.{name} must be finite, got {value}")


def _check_features(features: Any) -> None:
    if features is None:
        return
    if not isinstance(features, dict):
        raise ValidationError("features_not_a_map",
                              f"features must be a dict or None, got {type(features).__name__}")
    isfinite = math.isfinite
    for key, value in features.items():
        if type(key) is not str or not 0 < len(key) <= MAX_FEATURE_KEY_CHARS:
            _check_feature_key(key)
        kind = type(value)   # the plain kinds first: this runs for every entry of every event
        if kind is float:
            if not isfinite(value):
                _reject_feature(key, value)
        elif not (kind is str or kind is int or value is None):
            _check_feature_value(key, value)


def _check_feature_key(key: Any) -> None:
    if not isinstance(key, str) or not key or len(key) > MAX_FEATURE_KEY_CHARS:
        raise ValidationError(
            "feature_key_invalid",
            f"feature key {key!r:.80} must be a non-empty string of at most "
            f"{MAX_FEATURE_KEY_CHARS} characters")


def _check_feature_value(key: str, value: Any) -> None:
    if isinstance(value, str):
        return
    if isinstance(value, bool) or not _is_real(value) or not math.isfinite(value):
        _reject_feature(key, value)


def _reject_feature(key: str, value: Any) -> None:
    number = _is_real(value) and not isinstance(value, bool)
    raise ValidationError(
        "feature_not_finite" if number else "feature_type_invalid",
        f"feature {key!r} must be None, a finite number or a string, got {value!r:.80}")
