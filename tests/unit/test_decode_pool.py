"""consumers/decode_pool.py + decode_helper.py: batches decoded in real child processes."""
from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import datetime, timezone

from consumers import decode_pool
from consumers.decode_helper import decode_batch
from consumers.decode_pool import DecodePool
from consumers.rows import record_to_row
from schemas.codec import SCHEMA_DIR, default_codec
from schemas.settings import Settings
from schemas.validation import validate
from schemas.wire import WireCodec

TS = datetime(2024, 10, 23, 14, 56, 32, 123000, tzinfo=timezone.utc)


def outcome(i: int, **changes) -> dict:
    return {"event_id": f"e-{i}", "property_id": f"hotel-{i % 3}", "timestamp": TS, "quoted_price": 100.0 + i,
            "accepted": i % 2 == 0, "context": {"season": "autumn", "lead_time": i, "length_of_stay": 2},
            "features": {"channel": "web", "adults": 2.0}, **changes}


def newer_schema() -> dict:
    schema = json.loads((SCHEMA_DIR / "booking_outcome.avsc").read_text(encoding="utf-8"))
    schema["fields"].append({"name": "channel", "type": ["null", "string"], "default": None})
    return schema


def expected(record: dict) -> tuple[str, tuple]:
    decoded = validate(default_codec().decode(default_codec().encode(record)))
    return decoded["property_id"], record_to_row(decoded)


def test_decode_batch_answers_rows_and_leaves_every_rejection_to_the_worker():
    codec = default_codec()
    good = [codec.encode(outcome(i)) for i in range(3)]
    negative = codec.encode(outcome(9, quoted_price=-1.0))   # validation fails
    unknown = codec.encode_with(outcome(7), newer_schema())  # a writer schema nobody registered
    answers = decode_batch([good[0], None, b"\x00\x01", negative, unknown, *good[1:]], WireCodec(), 1_000_000)
    assert answers == [expected(outcome(0)), None, None, None, None, expected(outcome(1)), expected(outcome(2))]


def run(coroutine):
    return asyncio.run(coroutine)


def test_helpers_answer_in_order_and_learn_taught_schemas(tmp_path):
    async def scenario():
        pool = DecodePool(Settings.from_env({}, data_dir=str(tmp_path)), count=2)
        await pool.start()
        codec = default_codec()
        unknown = codec.encode_with(outcome(5), newer_schema())
        batches = [[codec.encode(outcome(i)) for i in range(k, k + 4)] for k in (0, 10, 20)]
        answers = await asyncio.gather(*(pool.submit(batch) for batch in batches))
        before = await pool.submit([unknown, unknown])
        pool.teach(newer_schema())
        after = await asyncio.gather(pool.submit([unknown]), pool.submit([unknown]))   # both helpers learned it
        await pool.close()
        return answers, before, after

    answers, before, after = run(scenario())
    assert answers == [[expected(outcome(i)) for i in range(k, k + 4)] for k in (0, 10, 20)]
    assert before == [None, None]
    assert after == [[expected(outcome(5))], [expected(outcome(5))]]


def test_a_dead_helper_means_the_worker_decodes_until_a_new_one_runs(tmp_path, monkeypatch):
    async def scenario():
        pool = DecodePool(Settings.from_env({}, data_dir=str(tmp_path)), count=1)
        await pool.start()
        value = default_codec().encode(outcome(1))
        assert await pool.submit([value]) == [expected(outcome(1))]
        os.kill(pool._helpers[0].proc.pid, signal.SIGKILL)
        await pool._helpers[0].reader            # it noticed
        assert await pool.submit([value]) is None   # read in the worker; a restart begins
        monkeypatch.setattr(decode_pool, "RESTART_SECONDS", 0.0)
        await pool.start()
        answer = await pool.submit([value])
        await pool.close()
        return answer

    assert run(scenario()) == [expected(outcome(1))]


def test_a_hung_helper_is_killed_and_counted_and_its_batch_read_in_the_worker(tmp_path, monkeypatch):
    lost = []

    async def scenario():
        pool = DecodePool(Settings.from_env({}, data_dir=str(tmp_path)), count=1, on_lost=lambda: lost.append(1))
        await pool.start()
        helper = pool._helpers[0]
        os.kill(helper.proc.pid, signal.SIGSTOP)   # alive, but answers nothing
        pending = pool.submit([default_codec().encode(outcome(1))])
        pool.check()
        assert not pending.done() and helper.alive   # not overdue yet
        monkeypatch.setattr(decode_pool, "ANSWER_SECONDS", 0.0)
        await asyncio.sleep(0.01)
        pool.check()
        answer = await asyncio.wait_for(pending, 5)
        returncode = await asyncio.wait_for(helper.proc.wait(), 5)
        await pool.close()
        return answer, returncode, helper.alive

    answer, returncode, alive = run(scenario())
    assert answer is None and not alive            # the worker reads the batch itself
    assert returncode == -signal.SIGKILL and lost == [1]
