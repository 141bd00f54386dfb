"""LandingWorker hands each take() batch to a decode helper and lands the one before it meanwhile;
the quiet-stream timer (tick) lands a pending batch too. Batches must reach the sink in the order
they were taken, whichever of the two gets there first."""
import asyncio
from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from consumers.acks import OrderedAcks
from consumers.app import LandingWorker
from consumers.dedupe import Verdict
from monitoring.metrics import IngestMetrics

BATCH = 4


class RecordingSink:
    buffered = 0

    def __init__(self):
        self.offsets: list[int] = []

    def accept_row(self, partition, offset, property_id, row, handle, produced_at=None):
        self.offsets.append(offset)
        return Verdict.NEW

    def flush_due(self, drained=False):
        return []

    def discard_all(self):
        pass


class HeldDecoder:
    """A decode pool whose answers come only when the test releases them."""

    def __init__(self):
        self.pending: list[tuple[list, asyncio.Future]] = []

    def submit(self, values):
        future = asyncio.get_running_loop().create_future()
        self.pending.append((values, future))
        return future

    def check(self) -> None:
        pass

    def answer(self, index: int) -> None:
        values, future = self.pending[index]
        future.set_result([("p", (value,)) for value in values])


def _worker() -> LandingWorker:
    worker = LandingWorker.__new__(LandingWorker)   # only what process() and tick() use: no Faust
    worker.settings = SimpleNamespace(take_batch=BATCH)
    worker.metrics = IngestMetrics(CollectorRegistry())
    worker.sink, worker.decoder, worker.acks = RecordingSink(), HeldDecoder(), OrderedAcks()
    worker.generation, worker.positions, worker.draining, worker.disk_paused = None, {}, False, False
    worker._last_batch_at, worker._decoding, worker._landing = float("-inf"), None, asyncio.Lock()
    return worker


def _events(first: int) -> list:
    return [SimpleNamespace(value=f"v{o}", ack=lambda: None,
                            message=SimpleNamespace(generation_id=1, partition=0, offset=o, timestamp=0.0))
            for o in range(first, first + BATCH)]


async def _settle():
    for _ in range(5):
        await asyncio.sleep(0)


def test_batches_land_in_the_order_taken_when_the_quiet_timer_lands_one_meanwhile():
    async def scenario():
        worker = _worker()
        await worker.process(_events(0))                 # batch 0 is with the helper
        p1 = asyncio.create_task(worker.process(_events(4)))
        await _settle()                                   # p1 holds the lock, waits for batch 0
        worker._last_batch_at = float("-inf")             # the stream looks quiet to the timer
        tick = asyncio.create_task(worker.tick())
        await _settle()
        p2 = asyncio.create_task(worker.process(_events(8)))
        await _settle()
        for index in range(3):
            worker.decoder.answer(index)
        await asyncio.gather(p1, tick, p2)
        worker._last_batch_at = float("-inf")
        await worker.tick()                               # lands whatever is still pending
        return worker.sink.offsets

    assert asyncio.run(scenario()) == list(range(12))


def test_a_short_batch_lands_at_once_and_a_full_one_waits_for_the_next():
    async def scenario():
        worker = _worker()
        await worker.process(_events(0))
        worker.decoder.answer(0)
        after_full = list(worker.sink.offsets)
        short = _events(4)[:2]
        task = asyncio.create_task(worker.process(short))
        await _settle()
        worker.decoder.answer(1)
        await task
        return after_full, worker.sink.offsets

    after_full, after_short = asyncio.run(scenario())
    assert after_full == []                       # decoded, but landed only with the next batch
    assert after_short == [0, 1, 2, 3, 4, 5]      # the short batch means drained: both land


def test_a_batch_decoded_while_partitions_are_revoked_is_left_for_the_next_owner():
    async def scenario():
        worker = _worker()
        worker.settings = SimpleNamespace(take_batch=BATCH, outcomes_topic="t")
        worker.sink.release = lambda partitions: []
        committing = asyncio.Event()
        acked: list = []

        async def commit():
            worker.decoder.answer(0)      # the helper answers while the commit is in flight
            await _settle()
            committing.set()

        worker.app = SimpleNamespace(consumer=SimpleNamespace(commit=commit))
        worker.assigned = set()
        events = _events(0)[:2]           # a short batch: landed as soon as it is decoded
        for event in events:
            event.ack = lambda o=event.message.offset: acked.append(o)
        landing = asyncio.create_task(worker.process(events))
        await _settle()                   # waiting for the helper
        await worker.on_revoked(None, [SimpleNamespace(topic="t", partition=0)])
        await landing
        return worker.sink.offsets, acked, committing.is_set()

    offsets, acked, committed = asyncio.run(scenario())
    assert committed and offsets == [] and acked == []   # nothing accepted or acked after the revoke
