"""Schema evolution on the wire: an older and a newer producer on the same topic both land."""
import json
import shutil
from datetime import datetime, timezone

import pyarrow.dataset as ds

from chaos import start_worker, wait_committed
from consumers.paths import outcomes_root
from producers.publisher import OutcomePublisher
from producers.topics import ensure_topics
from schemas.codec import SCHEMA_DIR, Codec
from schemas.validation import derive_event_id

T = datetime(2016, 5, 1, tzinfo=timezone.utc)
OLD = {"property_id": "city", "timestamp": T, "quoted_price": 90.0, "accepted": False,
       "final_price": None, "time_to_book": 1.5, "comp_p10": 70.0, "comp_p50": 85.0, "comp_p90": 99.0,
       "context": {"season": "Spring", "day_of_week": 6, "temperature": 18.5, "is_holiday": 0,
                   "occupancy_rate": 0.7, "lead_time": 14, "length_of_stay": 2, "is_refundable": 1}}
NEW = {"event_id": "new-1", "property_id": "city", "timestamp": T, "quoted_price": 110.0,
       "accepted": True, "final_price": 105.0, "features": {"country": "PRT", "adults": 2.0},
       "channel": "mobile"}


def newer_codec(tmp_path) -> Codec:
    """A producer one release ahead: its BookingOutcome has an optional field the worker lacks."""
    schema_dir = tmp_path / "newer-schemas"
    shutil.copytree(SCHEMA_DIR, schema_dir, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    schema = json.loads((schema_dir / "booking_outcome.avsc").read_text())
    schema["fields"].append({"name": "channel", "type": ["null", "string"], "default": None})
    (schema_dir / "booking_outcome.avsc").write_text(json.dumps(schema))
    return Codec(schema_dir)


def test_old_and_new_writers_land_with_the_right_values(settings_factory, tmp_path):
    settings = settings_factory(tmp_path, flush_interval_seconds=1.0)
    ensure_topics(settings)
    old_bytes = Codec().encode_with(OLD, SCHEMA_DIR / "history" / "booking_outcome_v0.avsc")
    with OutcomePublisher(settings, codec=newer_codec(tmp_path)) as newer:   # announces its schema
        newer.publish_raw(old_bytes, key=b"city")   # a seed-era producer: no event_id, no features
        newer.publish(NEW)
    worker = start_worker(settings, tmp_path, "worker")
    try:
        wait_committed(settings, newer.delivered_offsets)
        metrics = worker.metrics()
    finally:
        worker.stop()
    rows = {r["event_id"]: r for r in ds.dataset(outcomes_root(settings.data_dir), format="parquet",
                                                 partitioning="hive").to_table().to_pylist()}
    old_id = derive_event_id({**OLD, "event_id": "", "features": None})
    assert set(rows) == {old_id, "new-1"}            # the old event gets its content-derived id
    assert rows[old_id]["comp_p50"] == 85.0 and rows[old_id]["is_refundable"] == 1
    assert rows[old_id]["features"] is None          # the reader schema's default
    assert rows["new-1"]["final_price"] == 105.0
    assert json.loads(rows["new-1"]["features"]) == {"adults": 2.0, "country": "PRT"}
    assert "channel" not in rows["new-1"]            # resolved away by the reader schema
    assert metrics.get("bookloop_dead_lettered_total", 0) == 0
