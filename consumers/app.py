"""The Faust worker: wires the outcomes topic, the dead-letter topic, the parquet sink and /metrics.

The agent stays thin: it takes batches of events *without* acking them (`noack_take`), reads
and validates each one, hands valid ones to the LandingSink and bad ones to the dead-letter topic,
and acks an event only once it is durable somewhere (a landed parquet file or an acknowledged DLQ
message) or known to be a duplicate. Faust commits the contiguous prefix of acked offsets, so a
committed offset never runs ahead of the data on disk. The durability of landed data does not
rest on Faust tables or its exactly-once mode (see ../STYLE notes in the README).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import faust
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from consumers.acks import OrderedAcks
from consumers.decode_pool import DecodePool
from consumers.dedupe import Verdict
from consumers.drift_tracker import attach_drift_tracker
from consumers.http_api import register_http_api
from consumers.intake import Rejected, read_outcome
from consumers.kafka_auth import broker_credentials
from consumers.landing import LandingSink
from monitoring.metrics import DriftMetrics, IngestMetrics
from producers.schema_topic import read_announced
from producers.topics import topic_id
from schemas.codec import default_codec
from schemas.settings import Settings
from schemas.wire import WireCodec

log = logging.getLogger("bookloop.worker")
FLUSH_CHECK_SECONDS = 0.25   # how often a quiet worker checks whether buffered windows are due
TAKE_WITHIN_SECONDS = 0.5    # a batch is handed over when full or after this long
SCHEMA_READ_SECONDS = 10.0   # the announced schemas are read at most this often
# aiohttp takes the charset separately; Prometheus' text format is UTF-8 either way
_METRICS_CONTENT_TYPE = "; ".join(p for p in CONTENT_TYPE_LATEST.split("; ") if not p.startswith("charset"))


class LandingWorker:
    """Glue between Faust's stream and the LandingSink; one per worker process."""

    def __init__(self, app: faust.App, settings: Settings, metrics: IngestMetrics, epoch: str):
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.codec = default_codec()
        self.wire = WireCodec.for_topic(settings, settings.outcomes_topic, self.codec)  # both wire formats
        self.sink = LandingSink(settings, settings.outcomes_topic, epoch, metrics)
        self.dlq = app.topic(settings.dlq_topic, key_type=bytes, value_type=bytes,
                             key_serializer="raw", value_serializer="raw")
        self.acks = OrderedAcks()
        self.generation: int | None = None   # consumer generation whose events we are landing
        self.positions: dict[int, int] = {}   # next offset expected, per partition
        self.draining = False                 # revoked: ignore events until the next assignment
        self._schemas_read_at = float("-inf")
        self._last_batch_at = float("-inf")
        self.decoder = (DecodePool(settings, settings.decode_helpers, metrics.decode_helpers_lost.inc)
                        if settings.decode_helpers else None)
        self._decoding: _Decoding | None = None   # taken, handed to a helper, not landed yet
        self._landing = asyncio.Lock()            # batches land one at a time, in order
        self.disk_paused = False
        self.assigned: set = set()

    async def process(self, events: list) -> None:
        """Take the batch (in order, tracked for acks) and hand it to a decode helper; meanwhile land
        the batch before it. A short batch means the stream has drained: land this one too."""
        self._last_batch_at = time.monotonic()
        taken = [event for event in events if self._take(event)]
        self.metrics.consumed.inc(len(taken))
        current = _Decoding(self.generation, taken, self._submit(taken), time.time()) if taken else None
        drained = len(events) < self.settings.take_batch
        async with self._landing:   # `_decoding` changes hands only under the lock: batches land in order
            previous, self._decoding = self._decoding, current
            if previous is not None:
                await self._land(previous)
            if current is not None and self._decoding is current and (drained or self.decoder is None):
                self._decoding = None
                await self._land(current)
        self._complete(self._flush_due(drained))
        while self.disk_paused and not self.draining:   # hold the stream: Faust stops fetching
            await asyncio.sleep(1.0)
            self._complete(self._flush_due())
        _ack(self.acks.ready())
        self.metrics.buffered.set(self.sink.buffered)

    def _take(self, event: Any) -> bool:
        message = event.message
        if not self._in_order(message.generation_id, message.partition, message.offset):
            return False   # fetched before a rebalance, or an offset already taken
        self.acks.track(message.partition, message.offset, event)
        return True

    def _submit(self, events: list) -> asyncio.Future:
        if self.decoder is None:
            future = asyncio.get_running_loop().create_future()
            future.set_result(None)
            return future
        return self.decoder.submit([event.value for event in events])

    async def _land(self, decoding: "_Decoding") -> None:
        """Accept a decoded batch into the sink; values the helper did not answer are read here."""
        answers = await decoding.answers or [None] * len(decoding.events)
        dead: list[tuple[Any, Rejected]] = []
        for event, answer in zip(decoding.events, answers):
            if self.draining or decoding.generation != self.generation:
                return   # revoked meanwhile: the next owner reads these again (none was acked)
            message = event.message
            if answer is None:
                produced = message.timestamp if message.timestamp and message.timestamp > 0 else decoding.taken_at
                outcome = await self._read(event.value, min(produced, decoding.taken_at))
                if outcome is None or self.draining or decoding.generation != self.generation:
                    return
                if isinstance(outcome, Rejected):
                    dead.append((event, outcome))
                    continue
                verdict = self.sink.accept(message.partition, message.offset, outcome, event, message.timestamp)
            else:
                verdict = self.sink.accept_row(message.partition, message.offset, *answer, event, message.timestamp)
            if verdict is not Verdict.NEW:
                self._complete([event])
        if dead:
            await self._dead_letter(dead)
            self._complete(event for event, _ in dead)

    async def _read(self, value: bytes | None, produced_at: float | None = None) -> dict | Rejected | None:
        """The outcome or its rejection. An unknown fingerprint makes us read the announced schemas
        (see _learn_schemas); an unreachable Schema Registry holds the stream (retrying) instead of
        dead-lettering valid messages, until it answers or the partitions are revoked (then None).
        `produced_at`: when the message was produced (epoch seconds; default now)."""
        outcome = await self._decode(value)
        if (isinstance(outcome, Rejected) and outcome.reason == "unknown_fingerprint"
                and await self._learn_schemas(time.time() if produced_at is None else produced_at)):
            if self.draining:
                return None
            outcome = await self._decode(value)
        delay = 1.0
        while isinstance(outcome, Rejected) and outcome.reason == "registry_unavailable":
            if self.draining:
                return None
            log.warning("%s; holding the stream, retrying in %.0f s", outcome.detail, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            outcome = await self._decode(value)
        return outcome

    async def _decode(self, value: bytes | None) -> dict | Rejected:
        if self.wire.needs_fetch(value):   # the registry is asked over HTTP: off the event loop
            return await asyncio.to_thread(read_outcome, value, self.wire, self.settings.max_message_bytes)
        return read_outcome(value, self.wire, self.settings.max_message_bytes)

    async def _learn_schemas(self, produced_at: float) -> bool:
        """Read the schemas producers announced, unless a read began after the message was produced:
        its producer announced its schema before producing it, so the fingerprint is truly unknown
        (False: dead-letter it). Reads are SCHEMA_READ_SECONDS apart; a message produced since the
        last one holds the stream until the next (a newer producer's first events are not lost)."""
        if self._schemas_read_at >= produced_at:
            return False
        wait = self._schemas_read_at + SCHEMA_READ_SECONDS - time.time()
        if wait > 0:
            log.info("an unknown writer schema: reading the announced schemas again in %.1f s", wait)
            await asyncio.sleep(wait)
            if self.draining:
                return True   # revoked meanwhile: the caller leaves the message for the next owner
        self._schemas_read_at = time.time()
        for schema in await asyncio.to_thread(read_announced, self.settings):
            self.codec.register(schema, origin=f"announced on {self.settings.schema_topic}")
            if self.decoder is not None:
                self.decoder.teach(schema)
        return True

    def _in_order(self, generation: int, partition: int, offset: int) -> bool:
        """Take events of the current consumer generation, each offset once and in order.

        A newer generation (a rebalance happened) starts from a clean slate: Faust re-reads every
        partition from its committed offset, so the first event of a partition sets its position.
        Events of an older generation, or fetched after a revoke, are left unacked for the owner.
        """
        if self.generation is None or generation > self.generation:
            self._reset()
            self.generation = generation
        elif generation < self.generation or self.draining:
            return False
        expected = self.positions.get(partition, offset)
        if offset < expected:
            return False   # a copy of an offset already taken
        if offset > expected:
            log.warning("%s[%d]: offset %d follows %d; taking it", self.settings.outcomes_topic,
                        partition, offset, expected - 1)
        self.positions[partition] = offset + 1
        return True

    def _reset(self) -> None:
        self._decoding = None     # nor was any of the batch being decoded
        self.sink.discard_all()   # nothing in it was acked; Faust reads it again from the commits
        self.acks.reset()
        self.positions.clear()
        self.draining = False

    def _complete(self, events) -> None:
        for event in events:
            self.acks.complete(event.message.partition, event.message.offset)

    async def tick(self) -> None:
        if self.decoder is not None:
            self.decoder.check()   # a hung helper would hold the batch being landed forever
        quiet = time.monotonic() - self._last_batch_at > 2 * TAKE_WITHIN_SECONDS
        if quiet and self._decoding is not None:
            async with self._landing:
                decoding, self._decoding = self._decoding, None
                if decoding is not None:
                    await self._land(decoding)
        self._complete(self._flush_due(drained=quiet))
        _ack(self.acks.ready())

    def _flush_due(self, drained: bool = False) -> list[Any]:
        """Land what is due; `drained`: the stream handed over all it had (a short batch, or no
        batch for a while). When the disk refuses (full, read-only, gone), stop fetching and
        retry every tick: nothing past the last durable file is committed, nothing is dropped."""
        try:
            landed = self.sink.flush_due(drained)
        except OSError as exc:
            if not self.disk_paused:
                log.error("cannot write parquet under %s (%s): pausing consumption, nothing is "
                          "committed past the last durable file; retrying every second",
                          self.settings.data_dir, exc)
                self.disk_paused = True
            return []
        if self.disk_paused:
            log.warning("parquet writes work again under %s: resuming consumption", self.settings.data_dir)
            self.disk_paused = False
        return landed

    async def _dead_letter(self, dead: list[tuple[Any, Rejected]]) -> None:
        pending = []
        for event, rejected in dead:
            m = event.message
            log.warning("%s[%d]@%d dead-lettered (%s): %s", m.topic, m.partition, m.offset,
                        rejected.reason, rejected.detail)
            value = m.value if rejected.reason != "message_too_large" else None
            pending.append(await self.dlq.send(key=m.key, value=value, headers=dead_letter_headers(m, rejected)))
            self.metrics.dead_lettered.labels(rejected.reason).inc()
        await asyncio.gather(*pending)  # delivered to the DLQ before the originals are acked

    async def on_revoked(self, sender: Any, revoked: Iterable, **_: Any) -> None:
        """Land what is buffered, ack and commit it, and take no more events of this generation."""
        mine = {tp.partition for tp in revoked if tp.topic == self.settings.outcomes_topic}
        self.draining = True    # a batch landing meanwhile stops where it is (see _land)
        self._decoding = None   # not landed, not acked: the next owner reads it again
        try:
            self._complete(self.sink.release(mine))
        except OSError as exc:
            log.error("could not land buffered events before the rebalance (they will be re-read): %s", exc)
            self.sink.discard_all()
        _ack(self.acks.ready())
        await self.app.consumer.commit()
        self.positions.clear()
        self.assigned.clear()

    async def on_assigned(self, sender: Any, assigned: Iterable, **_: Any) -> None:
        self.assigned = {tp for tp in assigned if tp.topic == self.settings.outcomes_topic}
        self.sink.set_epoch(topic_id(self.settings, self.settings.outcomes_topic))
        if self.draining:   # the generation number did not change (a restarted broker reuses 0)
            self._reset()
        log.info("assigned %s", sorted(tp.partition for tp in self.assigned))


@dataclass(frozen=True)
class _Decoding:
    generation: int | None
    events: list
    answers: asyncio.Future   # DecodePool answers, or None: read every value in the worker
    taken_at: float           # epoch seconds


DEAD_LETTER_HEADERS = ("reason", "error", "source_topic", "source_partition", "source_offset")


def dead_letter_headers(message: Any, rejected: Rejected) -> list[tuple[str, bytes]]:
    """The original headers, then the worker's. An original header named like one of the worker's
    is kept as `original.<name>`: a reader taking the first `reason` gets the worker's."""
    original = message.headers or []
    items = original.items() if isinstance(original, Mapping) else original
    kept = [(f"original.{k}" if k in DEAD_LETTER_HEADERS else k, v) for k, v in items]
    return kept + [
        ("reason", rejected.reason.encode()), ("error", rejected.detail[:2000].encode()),
        ("source_topic", message.topic.encode()), ("source_partition", str(message.partition).encode()),
        ("source_offset", str(message.offset).encode())]


def _ack(events: list[Any]) -> None:
    for event in events:
        event.ack()


def faust_app(settings: Settings) -> faust.App:
    brokers = [f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",")]
    session = settings.session_timeout_seconds
    return faust.App(
        settings.group_id, broker=brokers, autodiscover=False, broker_credentials=broker_credentials(settings),
        key_serializer="raw", value_serializer="raw",
        web_port=settings.web_port, web_bind=settings.web_host, web_host=settings.web_host,
        datadir=f"{settings.data_dir}/.faust",
        broker_session_timeout=session, broker_heartbeat_interval=max(0.5, session / 6),
        broker_commit_interval=1.0, broker_commit_every=10_000,
        # records handed over per poll: fetched data stays compact bytes in the fetcher until the
        # stream needs it (some brokers, Tansu among them, answer a fetch with a whole backlog)
        broker_max_poll_records=settings.take_batch,
        consumer_auto_offset_reset="earliest", stream_wait_empty=False,
        topic_disable_leader=True, topic_allow_declare=False, producer_acks=-1,
    )


def create_worker(settings: Settings, registry: CollectorRegistry | None = None) -> tuple[faust.App, LandingWorker]:
    app = faust_app(settings)
    registry = registry or CollectorRegistry()
    worker = LandingWorker(app, settings, IngestMetrics(registry),
                           topic_id(settings, settings.outcomes_topic))
    outcomes = app.topic(settings.outcomes_topic, key_type=bytes, value_type=bytes,
                         key_serializer="raw", value_serializer="raw")

    async def land(stream):
        async for events in stream.noack_take(settings.take_batch, within=TAKE_WITHIN_SECONDS):
            await worker.process(events)

    app.agent(outcomes, name="bookloop.land")(land)
    if worker.decoder is not None:
        app.task(worker.decoder.start)

        async def close_decoder(sender: Any, **_: Any) -> None:
            await worker.decoder.close()

        app.on_before_shutdown.connect(close_decoder)
    app.timer(FLUSH_CHECK_SECONDS, name="bookloop.flush_due")(worker.tick)
    app.on_partitions_revoked.connect(worker.on_revoked)
    app.on_partitions_assigned.connect(worker.on_assigned)

    async def metrics_page(web, request):
        return web.bytes(generate_latest(registry), content_type=_METRICS_CONTENT_TYPE)

    app.page("/metrics")(metrics_page)
    register_http_api(app, worker, settings)  # the seed's HTTP API (POST /learn, stats, dashboards)
    attach_drift_tracker(app, worker.sink, settings, DriftMetrics(registry))
    return app, worker
