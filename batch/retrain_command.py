"""`bookloop retrain`: choose the properties, run the retrain, publish events, print, push metrics.

`--as-of` bounds the data (outcomes with event time before it) and ends the "new in the last 7
days" window. Its default is now: on replayed history (the demo's bookings end in August 2017)
nothing is new in the last 7 days, so only properties without a model train and a second run
skips; give `--as-of 2017-08-31` to replay a weekly run at the end of the history.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import datetime, time as day_time, timedelta, timezone

import click
from tqdm import tqdm

from batch.retrain import ModelResult, RetrainOptions, run_properties
from batch.retrain_report import model_block, report_json, summary_counts, summary_text
from batch.training import MODEL_TYPES, list_properties
from consumers.drift_event_reader import DriftEventReader
from monitoring.batch_metrics import RetrainMetrics
from producers.model_events import ModelEventPublisher
from producers.topics import ensure_topics
from schemas.errors import BookloopError, BrokerUnavailable, ConfigError
from schemas.settings import Settings


@dataclass(frozen=True)
class RetrainRequest:
    all_properties: bool
    property_id: str | None
    model_type: str
    force: bool
    min_new: int
    min_total: int
    as_of: str | None
    on_drift: bool
    publish: bool
    as_json: bool
    dask_scheduler: str | None = None   # train on this Dask cluster instead of local processes


def parse_as_of(text: str | None, now: datetime | None = None) -> datetime:
    """None: now. YYYY-MM-DD: the end of that UTC day. An ISO date-time: that instant (UTC if no zone)."""
    if text is None:
        return now or datetime.now(timezone.utc)
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d").date()
            return datetime.combine(day + timedelta(days=1), day_time(), tzinfo=timezone.utc)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--as-of {text!r} is neither YYYY-MM-DD nor an ISO date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def run_retrain_command(settings: Settings, request: RetrainRequest) -> int:
    """Exit code: 0 when nothing failed, 1 otherwise."""
    started = time.monotonic()
    if request.publish or request.on_drift:
        try:
            ensure_topics(settings)
        except BrokerUnavailable as exc:
            raise BrokerUnavailable(f"{exc}; retrain publishes ModelUpdated events (--no-publish to only "
                                    "update the registry)") from None
    reader = DriftEventReader(settings) if request.on_drift else None
    try:
        properties, options = _plan(settings, request, reader)
        if not properties:
            _say(request, "no unhandled DriftDetected events: nothing to retrain")
            return 0
        results = _run(settings, properties, options, request)
        failed = any(r.status == "failed" for r in results)
        seconds = time.monotonic() - started
        click.echo(report_json(results, options.cutoff.isoformat(), seconds) if request.as_json
                   else summary_text(results))
        if reader is not None and not failed:
            reader.commit()
        _push_metrics(settings, results, seconds)
        return 1 if failed else 0
    finally:
        if reader is not None:
            reader.close()


def _plan(settings: Settings, request: RetrainRequest,
          reader: DriftEventReader | None) -> tuple[list[str], RetrainOptions]:
    known = list_properties(settings.data_dir, settings.store_uri or None)
    if reader is not None:
        drifted = sorted({event["property_id"] for event in reader.read()})
        properties, trigger = [p for p in drifted if p in known], "drift"
        for gone in sorted(set(drifted) - set(properties)):  # not fatal: the event would block the others
            click.echo(f"Warning: DriftDetected for {gone!r}, which has no outcomes under {settings.data_dir}; "
                       "ignored", err=True)
    elif request.property_id is not None:
        properties, trigger = [request.property_id], "manual"
    else:
        properties, trigger = known, "schedule"
    unknown = [p for p in properties if p not in known]
    if unknown:
        raise BookloopError(f"no outcomes for {', '.join(map(repr, unknown))} under {settings.data_dir} "
                            f"(properties there: {', '.join(known) or 'none'})")
    model_types = MODEL_TYPES if request.model_type == "all" else (request.model_type,)
    options = RetrainOptions(model_types, parse_as_of(request.as_of), request.min_total, request.min_new,
                             force=request.force or request.on_drift,
                             trigger="force" if request.force and not request.on_drift else trigger,
                             store=settings.store_uri or None)
    return properties, options


def _run(settings: Settings, properties: list[str], options: RetrainOptions,
         request: RetrainRequest) -> list[ModelResult]:
    publisher = ModelEventPublisher(settings) if request.publish else None
    bar = tqdm(total=len(properties) * len(options.model_types), unit="model", desc="retrain",
               file=sys.stderr, disable=None)

    def on_result(result: ModelResult) -> None:
        if publisher is not None:
            _publish(publisher, result)
        if not request.as_json:
            bar.write(model_block(result))
        bar.update()

    try:
        return run_properties(settings.data_dir, properties, options, on_result, request.dask_scheduler)
    finally:
        bar.close()
        if publisher is not None:
            publisher.close()


def _publish(publisher: ModelEventPublisher, result: ModelResult) -> None:
    """The result's ModelUpdated events; a failed delivery turns the result into a failure."""
    try:
        for event in result.events:
            publisher.publish(event)
    except BookloopError as exc:
        result.reason = (f"{result.version} is registered, but its ModelUpdated event was not delivered: {exc}. "
                         f"Re-announce it with `bookloop models rollback --property-id {result.property_id} "
                         f"--model-type {result.model_type} --to <live version>`")
        result.status = "failed"
        result.lines.append(f"❌ Failed: {result.reason}")


def _push_metrics(settings: Settings, results: list[ModelResult], seconds: float) -> None:
    if not settings.pushgateway_url:
        return
    metrics = RetrainMetrics()
    for result in results:
        if result.version is not None:
            metrics.record_model(result.property_id, result.model_type, result.status == "retrained",
                                 result.metrics)
    counts = summary_counts(results)
    metrics.record_run({s: counts[s] for s in ("retrained", "not_deployed", "skipped", "failed")},
                       seconds, time.time())
    metrics.push(settings.pushgateway_url)


def _say(request: RetrainRequest, message: str) -> None:
    click.echo(report_json([], None, 0.0) if request.as_json else message)
