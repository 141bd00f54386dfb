"""`bookloop demo`: the main job end to end on the embedded broker and the real dataset."""
from __future__ import annotations

import json
import os
import shutil
import time
from contextlib import ExitStack
from pathlib import Path

import click
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from consumers.paths import outcomes_root
from consumers.process import WorkerProcess
from producers.embedded_broker import EmbeddedBroker, free_port
from producers.invalid_examples import invalid_messages
from producers.publisher import OutcomePublisher
from producers.replay import replay_dataset
from producers.topics import ensure_topics
from schemas.codec import default_codec
from schemas.errors import BookloopError
from schemas.settings import Settings


def run_demo(data_dir: str, limit: int | None, resend_fraction: float, timeout: float) -> bool:
    started = time.monotonic()
    _fresh(Path(data_dir))
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    with ExitStack() as children:   # stopped on any way out: an error, Ctrl-C, SIGTERM (see batch/cli.py)
        broker = None
        if not external:
            broker = EmbeddedBroker()
            children.callback(broker.stop)
            broker.start()
        suffix = f"-demo-{int(time.time())}" if external else ""
        settings = Settings.from_env(
            bootstrap_servers=external or broker.bootstrap, data_dir=data_dir, web_port=free_port(),
            outcomes_topic=f"booking-outcomes{suffix}", dlq_topic=f"booking-outcomes{suffix}.dlq",
            group_id=f"bookloop-demo{suffix}", session_timeout_seconds=6.0, flush_interval_seconds=2.0)
        click.echo(f"broker: {settings.bootstrap_servers} ({'external' if external else 'embedded Tansu'})")
        worker = WorkerProcess(settings, Path(data_dir) / "worker.log")
        children.callback(worker.stop)   # runs before broker.stop
        ensure_topics(settings)
        worker.start().wait_ready()
        produced, unique = _publish(settings, limit, resend_fraction)
        metrics = _wait_landed(worker, produced, timeout - (time.monotonic() - started))
    return _report(settings, produced, unique, metrics, time.monotonic() - started)


def _fresh(data_dir: Path) -> None:
    root = outcomes_root(data_dir)
    if root.exists():
        click.echo(f"removing the previous demo's {root}")
        shutil.rmtree(root)
    data_dir.mkdir(parents=True, exist_ok=True)


def _publish(settings: Settings, limit: int | None, resend_fraction: float) -> tuple[int, int]:
    with OutcomePublisher(settings) as publisher:
        report = replay_dataset(settings, limit=limit, resend_fraction=resend_fraction,
                                create_topics=False, publisher=publisher)
        broken = invalid_messages(default_codec())
        for _reason, value in broken:
            publisher.publish_raw(value, key=b"demo-invalid")
    click.echo(f"published {report.sent} events ({report.unique} bookings, {report.resent} re-sent) "
               f"+ {len(broken)} invalid messages in {report.seconds:.1f} s")
    return report.sent + len(broken), report.unique


def _wait_landed(worker: WorkerProcess, produced: int, timeout: float) -> dict[str, float]:
    """Until every produced message is accounted for: landed, dropped as duplicate, or dead-lettered."""
    deadline = time.monotonic() + timeout
    while True:
        m = worker.metrics()
        settled = (m.get("bookloop_events_landed_total", 0) + m.get("bookloop_duplicates_total", 0)
                   + m.get("bookloop_redelivered_total", 0) + m.get("bookloop_dead_lettered_total", 0))
        if settled >= produced and m.get("bookloop_buffered_events", 0) == 0:
            return m
        if time.monotonic() > deadline:
            raise BookloopError(f"timed out: {int(settled)} of {produced} messages settled; "
                                f"worker log tail:\n{worker.log_tail()}")
        time.sleep(0.5)


def _report(settings: Settings, produced: int, unique: int, m: dict[str, float], seconds: float) -> bool:
    root = outcomes_root(settings.data_dir)
    table = (ds.dataset(root, format="parquet", partitioning="hive").to_table(columns=["event_id", "property_id"])
             if root.is_dir() else pa.table({"event_id": pa.array([], pa.string()),
                                             "property_id": pa.array([], pa.string())}))   # nothing landed
    distinct = pc.count_distinct(table.column("event_id")).as_py()
    per_property = {row["values"]: row["counts"] for row in
                    pc.value_counts(table.column("property_id")).to_pylist()}
    summary = {
        "produced": produced, "landed": table.num_rows, "distinct_event_ids": distinct,
        "lost": unique - distinct, "duplicates_dropped": int(m.get("bookloop_duplicates_total", 0)),
        "dead_lettered": int(m.get("bookloop_dead_lettered_total", 0)),
        "late_events": int(m.get("bookloop_late_events_total", 0)),
        "files": int(m.get("bookloop_parquet_files_written_total", 0)),
        "properties": dict(sorted(per_property.items())), "data_dir": str(Path(settings.data_dir).resolve()),
        "seconds": round(seconds, 1), "events_per_second": round(produced / seconds, 1),
    }
    click.echo("")
    click.echo(f"events sent:        {produced} ({unique} bookings + re-sends + invalid)")
    for prop, rows in summary["properties"].items():
        click.echo(f"landed rows:        {rows:>7}  property {prop}")
    click.echo(f"landed total:       {table.num_rows} rows, {distinct} distinct event ids, "
               f"{summary['lost']} lost, in {summary['files']} part files")
    click.echo(f"duplicates dropped: {summary['duplicates_dropped']}")
    click.echo(f"dead-lettered:      {summary['dead_lettered']}")
    click.echo(f"late events:        {summary['late_events']}")
    click.echo(f"data:               {summary['data_dir']}")
    click.echo(f"elapsed:            {seconds:.1f} s ({summary['events_per_second']} events/s end to end)")
    click.echo("SUMMARY " + json.dumps(summary, sort_keys=True))
    return table.num_rows == unique == distinct
