import math
import re
import unicodedata
from datetime import datetime, timedelta, timezone

import pytest

from schemas.codec import Codec
from schemas.errors import ValidationError
from schemas.validation import MAX_FUTURE, MIN_TIMESTAMP, derive_event_id, validate

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
TS = datetime(2024, 5, 30, 8, 30, 15, 250000, tzinfo=timezone.utc)
RECORD = {
    "event_id": "evt-1",
    "property_id": "p1",
    "timestamp": TS,
    "quoted_price": 120.0,
    "accepted": True,
    "final_price": 110.0,
    "time_to_book": 3.5,
    "comp_p10": 90.0,
    "comp_p50": 115.0,
    "comp_p90": 150.0,
    "context": {"season": "summer", "day_of_week": 4, "temperature": 21.5, "is_holiday": 0,
                "occupancy_rate": 0.7, "lead_time": 12, "length_of_stay": 2, "is_refundable": 1},
    "features": {"channel": "web", "score": 0.25, "missing": None},
}
CONTEXT_NUMBERS = ("day_of_week", "temperature", "is_holiday", "occupancy_rate",
                   "lead_time", "length_of_stay", "is_refundable")
AMOUNTS = ("quoted_price", "final_price", "comp_p10", "comp_p50", "comp_p90")


def reason(record: dict) -> str:
    with pytest.raises(ValidationError) as info:
        validate(record, now=NOW)
    return info.value.reason


def without(key: str) -> dict:
    return {k: v for k, v in RECORD.items() if k != key}


def test_valid_record_with_event_id_is_returned_unchanged():
    assert validate(RECORD, now=NOW) is RECORD


def test_missing_event_id_is_derived_without_touching_the_input():
    for record in (without("event_id"), {**RECORD, "event_id": ""}, {**RECORD, "event_id": None}):
        before = dict(record)
        result = validate(record, now=NOW)
        assert record == before
        assert result["event_id"] == derive_event_id(RECORD)
        assert result["event_id"].startswith("sha256:") and len(result["event_id"]) == 7 + 32
        assert {k: v for k, v in result.items() if k != "event_id"} == without("event_id")


def test_int_millis_timestamp_becomes_aware_datetime():
    millis = int(TS.timestamp() * 1000)
    result = validate({**RECORD, "timestamp": millis}, now=NOW)
    assert result["timestamp"] == TS and result["timestamp"].tzinfo == timezone.utc


def test_non_ascii_property_id_is_valid():
    assert validate({**RECORD, "property_id": "hôtel-zürich-東京"}, now=NOW)["property_id"] == "hôtel-zürich-東京"


def test_timestamp_bounds_are_inclusive():
    assert validate({**RECORD, "timestamp": MIN_TIMESTAMP}, now=NOW)["timestamp"] == MIN_TIMESTAMP
    assert validate({**RECORD, "timestamp": NOW + MAX_FUTURE}, now=NOW)["timestamp"] == NOW + MAX_FUTURE


def test_minimal_record_is_valid():
    minimal = {"property_id": "p1", "timestamp": TS, "quoted_price": 0.0, "accepted": False}
    assert validate(minimal, now=NOW)["event_id"] == derive_event_id(minimal)


@pytest.mark.parametrize("record,expected", [
    (without("property_id"), "property_id_empty"),
    ({**RECORD, "property_id": None}, "property_id_empty"),
    ({**RECORD, "property_id": ""}, "property_id_empty"),
    ({**RECORD, "property_id": "   "}, "property_id_empty"),
    ({**RECORD, "property_id": "\t\n"}, "property_id_empty"),
    ({**RECORD, "property_id": 17}, "property_id_not_a_string"),
    ({**RECORD, "property_id": "p" * 129}, "property_id_too_long"),
    ({**RECORD, "property_id": "東" * 81}, "property_id_too_long"),  # 81 chars, 243 bytes
    ({**RECORD, "property_id": "a/b"}, "property_id_unsafe"),
    ({**RECORD, "property_id": "a\\b"}, "property_id_unsafe"),
    ({**RECORD, "property_id": "a\x00b"}, "property_id_unsafe"),
    ({**RECORD, "property_id": "."}, "property_id_unsafe"),
    ({**RECORD, "property_id": ".."}, "property_id_unsafe"),
    ({**RECORD, "property_id": "a..b"}, "property_id_unsafe"),
    ({**RECORD, "property_id": "a\ud800"}, "property_id_unsafe"),
    ({**RECORD, "event_id": "e" * 129}, "event_id_invalid"),
    ({**RECORD, "event_id": "evt\n1"}, "event_id_invalid"),
    ({**RECORD, "event_id": 5}, "event_id_invalid"),
    (without("timestamp"), "timestamp_missing"),
    ({**RECORD, "timestamp": None}, "timestamp_missing"),
    ({**RECORD, "timestamp": MIN_TIMESTAMP - timedelta(milliseconds=1)}, "timestamp_out_of_range"),
    ({**RECORD, "timestamp": NOW + MAX_FUTURE + timedelta(milliseconds=1)}, "timestamp_out_of_range"),
    ({**RECORD, "timestamp": 10**20}, "timestamp_out_of_range"),
    ({**RECORD, "timestamp": 1_000}, "timestamp_out_of_range"),
    ({**RECORD, "timestamp": datetime(2024, 5, 30)}, "timestamp_invalid"),
    ({**RECORD, "timestamp": "2024-05-30T08:30:00Z"}, "timestamp_invalid"),
    (without("quoted_price"), "quoted_price_missing"),
    ({**RECORD, "quoted_price": None}, "quoted_price_missing"),
    ({**RECORD, "accepted": 1}, "accepted_invalid"),
    ({**RECORD, "accepted": "yes"}, "accepted_invalid"),
    (without("accepted"), "accepted_invalid"),
    ({**RECORD, "time_to_book": -1.0}, "time_to_book_invalid"),
    ({**RECORD, "time_to_book": math.nan}, "time_to_book_invalid"),
    ({**RECORD, "time_to_book": "soon"}, "time_to_book_invalid"),
    ({**RECORD, "context": ["summer"]}, "context_not_a_record"),
    ({**RECORD, "context": {"temperature": "warm"}}, "context_temperature_not_a_number"),
    ({**RECORD, "features": [("a", 1.0)]}, "features_not_a_map"),
    ({**RECORD, "features": {"score": math.nan}}, "feature_not_finite"),
    ({**RECORD, "features": {"score": math.inf}}, "feature_not_finite"),
    ({**RECORD, "features": {"flag": True}}, "feature_type_invalid"),
    ({**RECORD, "features": {"items": [1, 2]}}, "feature_type_invalid"),
    ({**RECORD, "features": {"": 1.0}}, "feature_key_invalid"),
    ({**RECORD, "features": {"k" * 129: 1.0}}, "feature_key_invalid"),
    ({**RECORD, "features": {3: 1.0}}, "feature_key_invalid"),
])
def test_reason_codes(record, expected):
    assert reason(record) == expected


@pytest.mark.parametrize("field", AMOUNTS)
@pytest.mark.parametrize("value,suffix", [
    (math.nan, "not_finite"), (math.inf, "not_finite"), (-math.inf, "not_finite"),
    (-0.01, "negative"), ("12.5", "not_a_number"), (True, "not_a_number"),
])
def test_amount_reason_codes(field, value, suffix):
    assert reason({**RECORD, field: value}) == f"{field}_{suffix}"


@pytest.mark.parametrize("field", CONTEXT_NUMBERS)
def test_context_number_not_finite(field):
    assert reason({**RECORD, "context": {**RECORD["context"], field: math.inf}}) == f"context_{field}_not_finite"


def test_feature_message_names_the_key():
    with pytest.raises(ValidationError, match="'score'"):
        validate({**RECORD, "features": {"ok": 1.0, "score": math.nan}}, now=NOW)


def test_every_unicode_control_character_is_unsafe_and_format_characters_are_not():
    controls = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cc"]
    assert len(controls) == 65
    for char in controls:
        assert reason({**RECORD, "property_id": f"p{char}1"}) == "property_id_unsafe"
    assert validate({**RECORD, "property_id": "p\u200b1"}, now=NOW)["property_id"] == "p\u200b1"


def test_limits_are_inclusive():
    assert validate({**RECORD, "property_id": "p" * 128, "event_id": "e" * 128}, now=NOW)
    assert validate({**RECORD, "property_id": "東" * 80}, now=NOW)  # 240 bytes
    assert validate({**RECORD, "features": {"k" * 128: "v"}}, now=NOW)


def test_derive_event_id_is_deterministic():
    assert re.fullmatch(r"sha256:[0-9a-f]{32}", derive_event_id(RECORD))
    assert derive_event_id(RECORD) == derive_event_id(dict(RECORD))
    assert derive_event_id(RECORD) == derive_event_id({**RECORD, "event_id": "other"})
    assert derive_event_id(RECORD) == derive_event_id(dict(reversed(list(RECORD.items()))))


def test_derive_event_id_ignores_representation():
    base = without("event_id")
    same = [
        {**base, "timestamp": int(TS.timestamp() * 1000)},
        {**base, "timestamp": TS.astimezone(timezone(timedelta(hours=2)))},
        {**base, "quoted_price": 120},
        {**base, "features": {"channel": "web", "score": 0.25}},
    ]
    for record in same:
        assert derive_event_id(record) == derive_event_id(base)
    minimal = {"property_id": "p1", "timestamp": TS, "quoted_price": 99.0, "accepted": False}
    codec = Codec()
    assert derive_event_id(codec.decode(codec.encode(minimal))) == derive_event_id(minimal)


@pytest.mark.parametrize("change", [
    {"property_id": "p2"}, {"timestamp": TS + timedelta(milliseconds=1)}, {"quoted_price": 120.01},
    {"accepted": False}, {"final_price": None}, {"time_to_book": 3.0}, {"comp_p50": 116.0},
    {"context": {**RECORD["context"], "lead_time": 13}}, {"context": None},
    {"features": {"channel": "app", "score": 0.25}}, {"features": {"channel": "web", "score": "0.25"}},
])
def test_derive_event_id_is_content_sensitive(change):
    assert derive_event_id({**RECORD, **change}) != derive_event_id(RECORD)
