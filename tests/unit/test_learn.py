"""POST /learn's pure part: body parsing, JSON -> record, all-or-nothing validation, ids, partitions."""
import zlib
from datetime import datetime, timedelta, timezone

import pytest

from consumers.learn import (BadBatch, outcome_from_json, parse_batch, parse_timestamp, partition_for, prepare_batch,
                             summary)
from schemas.codec import default_codec
from schemas.errors import ValidationError
from schemas.validation import derive_event_id, validate

NOW = datetime(2024, 10, 24, tzinfo=timezone.utc)
SEED_ITEM = {"property_id": "property-uuid", "timestamp": "2024-10-23T14:30:00Z", "quoted_price": 205.50,
             "accepted": True, "final_price": 205.50, "context": {"season": "Fall", "day_of_week": 5}}


@pytest.mark.parametrize("body, code", [
    (b"{not json", "malformed_json"), (b"\xff\xfe", "malformed_json"), (b"[]", "batch_missing"),
    (b'{"batch": {}}', "batch_missing"), (b'{"batch": []}', "batch_empty")])
def test_bodies_that_are_no_batch(body, code):
    with pytest.raises(BadBatch) as caught:
        parse_batch(body)
    assert caught.value.code == code


def test_iso_timestamps_need_a_timezone():
    assert parse_timestamp("2024-10-23T14:30:00Z") == datetime(2024, 10, 23, 14, 30, tzinfo=timezone.utc)
    assert parse_timestamp("2024-10-23T16:30:00+02:00") == datetime(2024, 10, 23, 14, 30, tzinfo=timezone.utc)
    assert parse_timestamp(1729693800000) == 1729693800000  # epoch millis go to validate() as they are
    for text, reason in [("2024-10-23T14:30:00", "timestamp_no_timezone"), ("yesterday", "timestamp_invalid")]:
        with pytest.raises(ValidationError) as caught:
            parse_timestamp(text)
        assert caught.value.reason == reason


def test_unknown_fields_are_refused_not_dropped():
    with pytest.raises(ValidationError) as caught:
        outcome_from_json({**SEED_ITEM, "hotel_name": "x"})
    assert caught.value.reason == "unknown_field" and "features" in caught.value.message
    with pytest.raises(ValidationError) as caught:
        outcome_from_json({**SEED_ITEM, "context": {"weather": "rain"}})
    assert caught.value.reason == "context_unknown_field"
    with pytest.raises(ValidationError):
        outcome_from_json(["not", "an", "object"])


def test_a_batch_is_all_or_nothing_with_every_bad_item_listed():
    items = [SEED_ITEM, {**SEED_ITEM, "quoted_price": -1}, {**SEED_ITEM, "context": {"day_of_week": "Monday"}},
             {"property_id": "p"}]
    with pytest.raises(BadBatch) as caught:
        prepare_batch(items, default_codec(), now=NOW)
    assert [(e["index"], e["reason"]) for e in caught.value.errors] == [
        (1, "quoted_price_negative"), (2, "context_day_of_week_not_a_number"), (3, "timestamp_missing")]


def test_ids_are_derived_from_content_so_retries_repeat_them():
    first = prepare_batch([SEED_ITEM], default_codec(), now=NOW)[0]
    again = prepare_batch([dict(SEED_ITEM)], default_codec(), now=NOW)[0]
    assert first.event_id == again.event_id and first.value == again.value
    library = validate({**SEED_ITEM, "timestamp": datetime(2024, 10, 23, 14, 30, tzinfo=timezone.utc)})
    assert first.event_id == derive_event_id(library) == library["event_id"]
    given = prepare_batch([{**SEED_ITEM, "event_id": "booking-42"}], default_codec(), now=NOW)[0]
    assert given.event_id == "booking-42" and given.key == b"property-uuid"
    decoded = default_codec().decode(given.value)
    assert decoded["timestamp"] == datetime(2024, 10, 23, 14, 30, tzinfo=timezone.utc)


def test_future_timestamps_are_rejected_like_everywhere_else():
    future = (NOW + timedelta(days=3)).isoformat()
    with pytest.raises(BadBatch) as caught:
        prepare_batch([{**SEED_ITEM, "timestamp": future}], default_codec(), now=NOW)
    assert caught.value.errors[0]["reason"] == "timestamp_out_of_range"


def test_partition_is_crc32_of_the_key_like_librdkafka():
    # librdkafka's default (consistent_random) partitioner is crc32(key) % partitions; the
    # integration test checks it against events the publisher library sent to a real broker
    assert partition_for(b"city", 4) == zlib.crc32(b"city") % 4
    assert all(0 <= partition_for(f"p{i}".encode(), 7) < 7 for i in range(50))


def test_summary_is_the_seed_response():
    batch = prepare_batch([SEED_ITEM, {**SEED_ITEM, "quoted_price": 195.0}], default_codec(), now=NOW)
    assert summary(batch) == {"success": True, "processed": 2, "message": "Stored 2 outcomes across 1 properties"}
