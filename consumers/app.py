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
from typing import Any, Iterable

import faust
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from consumers.dedupe import Verdict
from consumers.intake import Rejected, read_outcome
from consumers.landing import LandingSink
from monitoring.metrics import IngestMetrics
from producers.topics import topic_id
from schemas.codec import default_codec
from schemas.settings import Settings

log = logging.getLogger("bookloop.worker")
# aiohttp takes the charset separately; Prometheus' text format is UTF-8 either way
_METRICS_CONTENT_TYPE = "; ".join(p for p in CONTENT_TYPE_LATEST.split("; ") if not p.startswith("charset"))


class LandingWorker:
    """Glue between Faust's stream and the LandingSink; one per worker process."""

    def __init__(self, app: faust.App, settings: Settings, metrics: IngestMetrics, epoch: str):
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.codec = default_codec()
        self.sink = LandingSink(settings, settings.outcomes_topic, epoch, metrics)
        self.dlq = app.topic(settings.dlq_topic, key_type=bytes, value_type=bytes,
                             key_serializer="raw", value_serializer="raw")
        self.assigned: set = set()

    async def process(self, events: list) -> None:
        dead: list[tuple[Any, Rejected]] = []
        done: list[Any] = []
        for event in events:
            message = event.message
            if message.tp not in self.assigned:
                continue  # fetched before a rebalance took the partition away; its owner re-reads it
            self.metrics.consumed.inc()
            outcome = read_outcome(event.value, self.codec, self.settings.max_message_bytes)
            if isinstance(outcome, Rejected):
                dead.append((event, outcome))
            elif self.sink.accept(message.partition, message.offset, outcome, event) is not Verdict.NEW:
                done.append(event)
        if dead:
            await self._dead_letter(dead)
            done.extend(event for event, _ in dead)
        done.extend(self._flush_due())
        _ack(done)
        self.metrics.buffered.set(self.sink.buffered)

    async def tick(self) -> None:
        _ack(self._flush_due())

    def _flush_due(self) -> list[Any]:
        try:
            return self.sink.flush_due()
        except OSError as exc:
            log.error("flush failed, nothing committed, will retry: %s", exc)
            return []

    async def _dead_letter(self, dead: list[tuple[Any, Rejected]]) -> None:
        pending = []
        for event, rejected in dead:
            m = event.message
            log.warning("%s[%d]@%d dead-lettered (%s): %s", m.topic, m.partition, m.offset,
                        rejected.reason, rejected.detail)
            value = m.value if rejected.reason != "message_too_large" else None
            headers = list(m.headers or []) + [
                ("reason", rejected.reason.encode()), ("error", rejected.detail[:2000].encode()),
                ("source_topic", m.topic.encode()), ("source_partition", str(m.partition).encode()),
                ("source_offset", str(m.offset).encode())]
            pending.append(await self.dlq.send(key=m.key, value=value, headers=headers))
            self.metrics.dead_lettered.labels(rejected.reason).inc()
        await asyncio.gather(*pending)  # delivered to the DLQ before the originals are acked

    async def on_revoked(self, sender: Any, revoked: Iterable, **_: Any) -> None:
        mine = {tp.partition for tp in revoked if tp.topic == self.settings.outcomes_topic}
        _ack(self.sink.release(mine))
        await self.app.consumer.commit()
        self.assigned.clear()

    async def on_assigned(self, sender: Any, assigned: Iterable, **_: Any) -> None:
        self.assigned = {tp for tp in assigned if tp.topic == self.settings.outcomes_topic}
        self.sink.set_epoch(topic_id(self.settings, self.settings.outcomes_topic))
        log.info("assigned %s", sorted(tp.partition for tp in self.assigned))


def _ack(events: list[Any]) -> None:
    for event in events:
        event.ack()


def faust_app(settings: Settings) -> faust.App:
    brokers = [f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",")]
    session = settings.session_timeout_seconds
    return faust.App(
        settings.group_id, broker=brokers, autodiscover=False,
        key_serializer="raw", value_serializer="raw",
        web_port=settings.web_port, web_bind=settings.web_host, web_host=settings.web_host,
        datadir=f"{settings.data_dir}/.faust",
        broker_session_timeout=session, broker_heartbeat_interval=max(0.5, session / 6),
        broker_commit_interval=1.0, broker_commit_every=10_000,
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
        async for events in stream.noack_take(settings.take_batch, within=0.5):
            await worker.process(events)

    app.agent(outcomes, name="bookloop.land")(land)
    app.timer(1.0, name="bookloop.flush_due")(worker.tick)
    app.on_partitions_revoked.connect(worker.on_revoked)
    app.on_partitions_assigned.connect(worker.on_assigned)

    async def metrics_page(web, request):
        return web.bytes(generate_latest(registry), content_type=_METRICS_CONTENT_TYPE)

    app.page("/metrics")(metrics_page)
    return app, worker
