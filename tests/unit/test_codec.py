import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from fastavro.schema import fingerprint as fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from schemas.codec import SCHEMA_DIR, Codec, default_codec, rabin_fingerprint
from schemas.errors import CodecError

V0_PATH = SCHEMA_DIR / "history" / "booking_outcome_v0.avsc"
TS = datetime(2024, 10, 23, 14, 56, 32, 123000, tzinfo=timezone.utc)

FULL = {
    "event_id": "evt-1",
    "property_id": "hôtel-zürich-東京",
    "timestamp": TS,
    "quoted_price": 189.5,
    "accepted": True,
    "final_price": 180.0,
    "time_to_book": 42.25,
    "comp_p10": 150.0,
    "comp_p50": 175.5,
    "comp_p90": 240.0,
    "context": {
        "season": "autumn", "day_of_week": 2, "temperature": -3.5, "is_holiday": 0,
        "occupancy_rate": 0.83, "lead_time": 14, "length_of_stay": 3, "is_refundable": 1,
    },
    "features": {"channel": "mobile", "loyalty_points": 1200.0, "promo": None},
}
MINIMAL = {"property_id": "p1", "timestamp": TS, "quoted_price": 99.0, "accepted": False}
OPTIONAL_NONE = {name: None for name in
                 ("final_price", "time_to_book", "comp_p10", "comp_p50", "comp_p90", "context", "features")}
MODEL_UPDATED = {
    "version": "v20241023_145632", "property_id": "p1", "model_type": "conversion",
    "metrics": {"auc": 0.81}, "artifact_uri": "file:///models/p1/v20241023_145632.txt",
    "artifact_sha256": "ab" * 32, "previous_version": None, "deployed": True,
    "trigger": "drift", "created_at": TS,
}


@pytest.fixture
def codec():
    return Codec()


def crc64_avro_bitwise(data: bytes) -> int:
    """Independent reference: the spec's algorithm one bit at a time, no table."""
    poly = 0xC15D213AA4D7A795
    fp = poly
    for byte in data:
        fp ^= byte
        for _ in range(8):
            fp = (fp >> 1) ^ poly if fp & 1 else fp >> 1
    return fp


def current_schema_dict() -> dict:
    return json.loads((SCHEMA_DIR / "booking_outcome.avsc").read_text(encoding="utf-8"))


def newer_schema_dict() -> dict:
    schema = current_schema_dict()
    schema["fields"].append({"name": "channel", "type": ["null", "string"], "default": None})
    return schema


def reason_of(codec, data, expect="bookloop.BookingOutcome") -> CodecError:
    with pytest.raises(CodecError) as info:
        codec.decode(data, expect=expect)
    return info.value


def test_round_trip_full_record(codec):
    assert codec.decode(codec.encode(FULL)) == FULL


def test_round_trip_minimal_record_fills_defaults(codec):
    decoded = codec.decode(codec.encode(MINIMAL))
    assert decoded == {**MINIMAL, "event_id": "", **OPTIONAL_NONE}
    assert decoded["timestamp"].tzinfo == timezone.utc


def test_int_millis_timestamp_encodes_to_the_same_bytes(codec):
    millis = int(TS.timestamp() * 1000)
    assert millis == 1729695392123
    assert codec.encode({**MINIMAL, "timestamp": millis}) == codec.encode(MINIMAL)


def test_model_updated_round_trip(codec):
    data = codec.encode(MODEL_UPDATED, schema="bookloop.ModelUpdated")
    assert codec.decode(data, expect="bookloop.ModelUpdated") == MODEL_UPDATED


def test_header_is_marker_then_fingerprint(codec):
    data = codec.encode(MINIMAL)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == codec.fingerprint()
    canonical = to_parsing_canonical_form(current_schema_dict()).encode()
    assert codec.fingerprint() == crc64_avro_bitwise(canonical).to_bytes(8, "little")


def test_spec_test_vector_for_null_schema():
    assert crc64_avro_bitwise(b'"null"') == 0x63DD24E7CC258F8A
    assert rabin_fingerprint(b'"null"') == 0x63DD24E7CC258F8A
    assert fastavro_fingerprint('"null"', "CRC-64-AVRO") == "8a8f25cce724dd63"


@pytest.mark.parametrize("data", [b"", b"a", b'{"type":"record"}', bytes(range(256)) * 3])
def test_table_driven_rabin_matches_bitwise_reference(data):
    assert rabin_fingerprint(data) == crc64_avro_bitwise(data)


@pytest.mark.parametrize("name,file", [("bookloop.BookingOutcome", "booking_outcome.avsc"),
                                       ("bookloop.ModelUpdated", "model_updated.avsc")])
def test_fingerprint_matches_fastavro(codec, name, file):
    schema = json.loads((SCHEMA_DIR / file).read_text(encoding="utf-8"))
    expected = fastavro_fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO")
    assert codec.fingerprint(name).hex() == expected


def test_v0_bytes_decode_with_defaults(codec):
    v0_record = {k: v for k, v in FULL.items() if k not in ("event_id", "features")}
    data = codec.encode_with(v0_record, V0_PATH)
    assert data[2:10] != codec.fingerprint()
    assert codec.decode(data) == {**v0_record, "event_id": "", "features": None}


def test_newer_writer_field_is_dropped_once_registered(codec):
    data = codec.encode_with({**MINIMAL, "channel": "web"}, newer_schema_dict())
    assert reason_of(codec, data).reason == "unknown_fingerprint"
    fp = codec.register(newer_schema_dict())
    assert data[2:10] == fp
    assert codec.decode(data) == {**MINIMAL, "event_id": "", **OPTIONAL_NONE}


@pytest.mark.parametrize("data", [b"", None])
def test_empty_message(codec, data):
    assert reason_of(codec, data).reason == "empty_message"


def test_bad_marker_shows_first_bytes(codec):
    error = reason_of(codec, b'{"property_id": "p1"}')
    assert error.reason == "bad_marker"
    assert "7b 22 70" in str(error) and "single-object" in str(error)


def test_unknown_fingerprint_names_fingerprint_and_known_schemas(codec):
    data = b"\xc3\x01" + bytes.fromhex("0102030405060708") + b"\x00"
    error = reason_of(codec, data)
    assert error.reason == "unknown_fingerprint"
    assert "0102030405060708" in str(error)
    assert codec.fingerprint().hex() in str(error) and "booking_outcome_v0.avsc" in str(error)


def test_model_updated_bytes_expected_as_booking_outcome(codec):
    data = codec.encode(MODEL_UPDATED, schema="bookloop.ModelUpdated")
    error = reason_of(codec, data)
    assert error.reason == "wrong_schema"
    assert "bookloop.ModelUpdated" in str(error)


@pytest.mark.parametrize("cut", [1, 5, 20])
def test_truncated_body(codec, cut):
    data = codec.encode(FULL)
    assert reason_of(codec, data[:-cut]).reason == "corrupt_body"


def test_truncated_header(codec):
    assert reason_of(codec, codec.encode(MINIMAL)[:6]).reason == "corrupt_body"


def test_trailing_garbage(codec):
    error = reason_of(codec, codec.encode(MINIMAL) + b"\x00\x01")
    assert error.reason == "corrupt_body"
    assert "2 trailing bytes" in str(error)


def test_bad_union_branch_in_body(codec):
    data = bytearray(codec.encode(MINIMAL))
    data[-7] = 0x7E  # the final_price union index: 63, no such branch
    assert reason_of(codec, bytes(data)).reason == "corrupt_body"


def test_encode_rejects_record_that_does_not_fit(codec):
    with pytest.raises(CodecError) as info:
        codec.encode({k: v for k, v in MINIMAL.items() if k != "accepted"})
    assert info.value.reason == "not_encodable"
    with pytest.raises(CodecError):
        codec.encode({**MINIMAL, "unknown_field": 1})


def test_unknown_schema_name_is_a_programming_error(codec):
    with pytest.raises(ValueError, match="bookloop.Nope"):
        codec.decode(codec.encode(MINIMAL), expect="bookloop.Nope")


def test_two_current_schemas_of_one_name_are_refused(tmp_path: Path):
    for name in ("a.avsc", "b.avsc"):
        (tmp_path / name).write_text(json.dumps(current_schema_dict()), encoding="utf-8")
    with pytest.raises(ValueError, match="two current schemas"):
        Codec(tmp_path)


def test_default_codec_is_cached():
    assert default_codec() is default_codec()
