"""LandingWorker._read with a writer schema the worker does not know yet: the announced schemas
are re-read unless a read began after the message was produced, at most every 10 s; a message
produced since the last read waits for the next one instead of being dead-lettered."""
import asyncio
import json
from datetime import datetime, timezone

from consumers import app
from consumers.app import SCHEMA_READ_SECONDS, LandingWorker
from consumers.intake import Rejected
from schemas.codec import SCHEMA_DIR, Codec
from schemas.settings import Settings
from schemas.wire import WireCodec

TS = datetime(2024, 10, 23, 14, 56, 32, tzinfo=timezone.utc)


def newer_schema(field: str) -> dict:
    schema = json.loads((SCHEMA_DIR / "booking_outcome.avsc").read_text(encoding="utf-8"))
    schema["fields"].append({"name": field, "type": ["null", "string"], "default": None})
    return schema


def outcome(i: int) -> dict:
    return {"event_id": f"e-{i}", "property_id": "hotel", "timestamp": TS, "quoted_price": 100.0, "accepted": True}


class Clock:
    def __init__(self, now: float):
        self.now = now
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def _worker(tmp_path, monkeypatch, announced: list[dict], clock: Clock) -> tuple[LandingWorker, list]:
    worker = LandingWorker.__new__(LandingWorker)   # only what _read needs: no Faust app, no broker
    worker.settings = Settings.from_env({}, data_dir=str(tmp_path))
    worker.codec = Codec()
    worker.wire = WireCodec.for_topic(worker.settings, "t", worker.codec)
    worker.decoder, worker.draining, worker._schemas_read_at = None, False, float("-inf")
    reads = []

    def read_announced(settings):
        reads.append(clock.now)
        return list(announced)

    monkeypatch.setattr(app, "read_announced", read_announced)
    monkeypatch.setattr(app.time, "time", clock.time)
    monkeypatch.setattr(app.asyncio, "sleep", clock.sleep)
    return worker, reads


def test_a_second_new_schema_a_few_seconds_later_waits_for_the_next_read_and_lands(tmp_path, monkeypatch):
    clock = Clock(1000.0)
    announced = [newer_schema("channel")]
    worker, reads = _worker(tmp_path, monkeypatch, announced, clock)
    first = Codec().encode_with(outcome(1), newer_schema("channel"))
    assert asyncio.run(worker._read(first, produced_at=999.5))["event_id"] == "e-1"
    assert reads == [1000.0] and clock.slept == []

    clock.now = 1003.0                                # a second producer, another new field
    announced.append(newer_schema("rate_plan"))
    second = Codec().encode_with(outcome(2), newer_schema("rate_plan"))
    assert asyncio.run(worker._read(second, produced_at=1002.5))["event_id"] == "e-2"
    assert clock.slept == [SCHEMA_READ_SECONDS - 3.0] and reads == [1000.0, 1010.0]


def test_a_fingerprint_unknown_at_a_read_after_its_production_is_dead_lettered_at_once(tmp_path, monkeypatch):
    clock = Clock(1000.0)
    worker, reads = _worker(tmp_path, monkeypatch, [], clock)
    stray = Codec().encode_with(outcome(3), newer_schema("nobody_announced_me"))
    rejected = asyncio.run(worker._read(stray, produced_at=990.0))
    assert isinstance(rejected, Rejected) and rejected.reason == "unknown_fingerprint" and reads == [1000.0]
    clock.now = 1001.0                                # produced before that read: no new read, no wait
    again = asyncio.run(worker._read(stray, produced_at=995.0))
    assert again.reason == "unknown_fingerprint" and reads == [1000.0] and clock.slept == []


def test_a_revoke_while_waiting_for_the_next_read_leaves_the_message_unread(tmp_path, monkeypatch):
    clock = Clock(1000.0)
    worker, reads = _worker(tmp_path, monkeypatch, [], clock)
    worker._schemas_read_at = 998.0
    original_sleep = clock.sleep

    async def revoked_meanwhile(seconds):
        await original_sleep(seconds)
        worker.draining = True

    monkeypatch.setattr(app.asyncio, "sleep", revoked_meanwhile)
    stray = Codec().encode_with(outcome(4), newer_schema("late"))
    assert asyncio.run(worker._read(stray, produced_at=999.0)) is None and reads == []
