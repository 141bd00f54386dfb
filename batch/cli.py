"""`bookloop` — one click entry point for the broker, the worker, replays and the demo.

Every command builds one Settings object: defaults < env vars < the flags given here.
Errors bookloop raises on purpose print as one line and exit non-zero.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import signal
import sys
import threading
from datetime import datetime, timedelta

import click

from batch.drift_command import drift_command
from batch.storage_commands import check_as_of_day, storage_commands
from schemas.errors import BookloopError
from schemas.settings import Settings

_FLAGS = {  # flag -> Settings field; shared by the commands that talk to Kafka
    "bootstrap": ("--bootstrap", "bootstrap_servers", str, "Kafka bootstrap servers [KAFKA_BOOTSTRAP_SERVERS]"),
    "data_dir": ("--data-dir", "data_dir", str, "Parquet store root [BOOKLOOP_DATA_DIR]"),
    "topic": ("--topic", "outcomes_topic", str, "Outcomes topic [BOOKLOOP_OUTCOMES_TOPIC]"),
}


def settings_options(*names: str):
    """Add the named settings flags to a command and pass a ready `settings` instead of them."""
    def decorate(command):
        @functools.wraps(command)
        def wrapper(**kwargs):
            overrides = {_FLAGS[n][1]: kwargs.pop(n) for n in names}
            try:
                kwargs["settings"] = Settings.from_env(**overrides)
            except BookloopError as exc:
                raise click.UsageError(str(exc)) from None
            return command(**kwargs)
        for name in reversed(names):
            flag, _, kind, doc = _FLAGS[name]
            wrapper = click.option(flag, name, type=kind, default=None, help=doc)(wrapper)
        return wrapper
    return decorate


def _positive_number(ctx, param, value: float | None) -> float | None:
    """A finite number > 0 (click's FloatRange lets nan and inf through)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"{value} is not a finite number > 0")
    return value


_LIMIT = click.option("--limit", type=click.IntRange(min=1), default=None,
                      help="Replay only the first N bookings, in booking-time order (N >= 1; default: all)")


@contextlib.contextmanager
def sigterm_exits():
    """While inside: SIGTERM raises SystemExit(143), as Ctrl-C raises KeyboardInterrupt, so the finally
    blocks and context managers stop child processes; a second SIGTERM during that cleanup is ignored."""
    def exit_now(signum, _frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, exit_now)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_cli(fn):
    """Turn BookloopError into `Error: message` and exit code 1 (click's own usage errors give 2)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BookloopError as exc:
            raise click.ClickException(str(exc)) from None
    return wrapper


@click.group()
@click.option("--log-level", default="WARNING", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def cli(log_level: str) -> None:
    """bookloop: booking outcomes on Kafka -> deduplicated parquet -> drift -> retrain."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@cli.command()
@click.option("--port", type=int, default=None, help="Port on 127.0.0.1 (default: a free one)")
@run_cli
def broker(port: int | None) -> None:
    """Run the embedded Tansu broker in the foreground until Ctrl-C."""
    from producers.embedded_broker import EmbeddedBroker

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with EmbeddedBroker(port) as embedded:
        click.echo(f"KAFKA_BOOTSTRAP_SERVERS={embedded.bootstrap}", err=False)
        sys.stdout.flush()
        try:
            while not stop.wait(0.5):
                if not embedded.running:
                    raise click.ClickException(f"broker exited; log tail:\n{embedded.log_tail()}")
        except KeyboardInterrupt:
            pass


@cli.command()
@settings_options("bootstrap", "data_dir", "topic")
@click.option("--web-port", type=int, default=None, help="Web port for /metrics [BOOKLOOP_WEB_PORT]")
@click.option("--group-id", default=None, help="Consumer group [BOOKLOOP_GROUP_ID]")
@click.option("--create-topics/--no-create-topics", default=True, show_default=True)
@run_cli
def worker(settings: Settings, web_port: int | None, group_id: str | None, create_topics: bool) -> None:
    """Run the Faust landing worker (consumes outcomes, lands parquet, serves /metrics)."""
    from consumers.run import run_worker

    try:
        settings = settings.replace(**{k: v for k, v in
                                       {"web_port": web_port, "group_id": group_id}.items() if v is not None})
    except BookloopError as exc:
        raise click.UsageError(str(exc)) from None
    run_worker(settings, create_topics=create_topics)


@cli.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False), required=False)
@settings_options("bootstrap", "topic")
@_LIMIT
@click.option("--rate", type=float, default=None, callback=_positive_number,
              help="Events per second, a number > 0 (default: as fast as possible)")
@click.option("--resend-fraction", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of events sent a second time (same event_id) to exercise dedupe")
@click.option("--create-topics/--no-create-topics", default=True, show_default=True)
@run_cli
def replay(path, settings: Settings, limit, rate, resend_fraction, create_topics) -> None:
    """Publish the hotel bookings dataset (default: the shipped copy) as outcome events."""
    from producers.replay import replay_dataset

    report = replay_dataset(settings, path, limit=limit, rate=rate, resend_fraction=resend_fraction,
                            create_topics=create_topics)
    click.echo(f"published {report.sent} events ({report.unique} bookings, {report.resent} re-sent) "
               f"to {settings.outcomes_topic} in {report.seconds:.1f} s")


@cli.command("create-topics")
@settings_options("bootstrap")
@click.option("--replication-factor", type=click.IntRange(min=1), default=1, show_default=True)
@run_cli
def create_topics(settings: Settings, replication_factor: int) -> None:
    """Create bookloop's topics if missing (outcomes, DLQ, drift: BOOKLOOP_PARTITIONS; models, schemas: compacted)."""
    from producers.topics import ensure_topics, probe

    probe(settings, timeout=settings.delivery_timeout_seconds)
    created = ensure_topics(settings, replication_factor=replication_factor)
    click.echo(f"created: {', '.join(created) or 'none (all existed)'}")


@cli.command()
@click.option("--data-dir", default="demo-data", show_default=True,
              help="Where the demo lands parquet (its outcomes/ folder is recreated)")
@_LIMIT
@click.option("--resend-fraction", type=click.FloatRange(0, 1), default=0.05, show_default=True)
@click.option("--timeout", type=float, default=900, show_default=True, callback=_positive_number,
              help="Give up after this many seconds")
@run_cli
def demo(data_dir: str, limit: int | None, resend_fraction: float, timeout: float) -> None:
    """Broker + worker + replay of the real dataset; prints a summary and a SUMMARY {json} line."""
    from batch.demo import run_demo

    with sigterm_exits():   # `kill <demo>` stops the broker and the worker too (they run in their own sessions)
        ok = run_demo(data_dir=data_dir, limit=limit, resend_fraction=resend_fraction, timeout=timeout)
    sys.exit(0 if ok else 1)


_MODEL_TYPES = ["conversion", "adr", "revpar"]


def _retrain_as_of(ctx, param, text: str | None) -> str | None:
    """Check `retrain --as-of` up front like drift's and stats': a bad or out-of-range date is a usage
    error (exit 2). The text goes on unchanged; retrain_command.parse_as_of reads it."""
    if text is None:
        return None
    from batch.retrain_command import parse_as_of

    try:
        instant = parse_as_of(text)
    except BookloopError:
        raise click.BadParameter(f"{text!r} is neither YYYY-MM-DD nor an ISO date-time") from None
    except OverflowError:   # the end of 9999-12-31
        instant = datetime.max
    check_as_of_day((instant - timedelta(days=1) if len(text) == 10 else instant).date(), text)
    return text


@cli.command()
@settings_options("bootstrap", "data_dir")
@click.option("--all-properties", is_flag=True, help="Every property in the store")
@click.option("--property-id", default=None, help="One property")
@click.option("--on-drift", is_flag=True, help="The properties of unhandled DriftDetected events (forced)")
@click.option("--model-type", type=click.Choice(_MODEL_TYPES + ["all"]), default="all", show_default=True)
@click.option("--force", is_flag=True, help="Ignore the outcome thresholds (deploying still needs the comparison)")
@click.option("--min-new-outcomes", type=click.IntRange(min=0), default=100, show_default=True)
@click.option("--min-total-outcomes", type=click.IntRange(min=0), default=1000, show_default=True)
@click.option("--as-of", default=None, callback=_retrain_as_of,
              help="YYYY-MM-DD (through that day, UTC) or ISO time; default now")
@click.option("--pushgateway", default=None, help="Push run metrics here [BOOKLOOP_PUSHGATEWAY_URL]")
@click.option("--publish/--no-publish", default=True, show_default=True, help="Publish ModelUpdated events")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report instead of the text blocks")
@click.option("--dask-scheduler", default=None, metavar="ADDRESS",
              help="Train the properties on this Dask cluster (tcp://host:8786; needs bookloop[dask])")
@run_cli
def retrain(settings: Settings, all_properties, property_id, on_drift, model_type, force, min_new_outcomes,
            min_total_outcomes, as_of, pushgateway, publish, as_json, dask_scheduler) -> None:
    """Retrain LightGBM models from the parquet store; deploy those not worse than the live ones."""
    from batch.retrain_command import RetrainRequest, run_retrain_command

    if sum((all_properties, property_id is not None, on_drift)) != 1:
        raise click.UsageError("give exactly one of --all-properties, --property-id P, --on-drift")
    if pushgateway is not None:
        settings = settings.replace(pushgateway_url=pushgateway)
    request = RetrainRequest(all_properties, property_id, model_type, force, min_new_outcomes,
                             min_total_outcomes, as_of, on_drift, publish, as_json, dask_scheduler)
    sys.exit(run_retrain_command(settings, request))


@cli.group()
def models() -> None:
    """The model registry under <data_dir>/models."""


@models.command("list")
@settings_options("data_dir")
@click.option("--property-id", default=None, help="Only this property")
@click.option("--json", "as_json", is_flag=True)
@run_cli
def models_list(settings: Settings, property_id: str | None, as_json: bool) -> None:
    """Registered versions, newest first; * marks the deployed one."""
    from batch.models_command import list_models

    list_models(settings, property_id, as_json)


@models.command("rollback")
@settings_options("bootstrap", "data_dir")
@click.option("--property-id", required=True)
@click.option("--model-type", type=click.Choice(_MODEL_TYPES), required=True)
@click.option("--to", "to_version", default=None, help="Version to deploy (default: the one live before)")
@run_cli
def models_rollback(settings: Settings, property_id: str, model_type: str, to_version: str | None) -> None:
    """Deploy an earlier version again and publish its ModelUpdated event."""
    from batch.models_command import rollback

    rollback(settings, property_id, model_type, to_version)


@cli.command("follow-models")
@settings_options("bootstrap")
@click.option("--once", is_flag=True, help="Print the live versions after rebuilding, then exit")
@click.option("--json", "as_json", is_flag=True)
@run_cli
def follow_models_command(settings: Settings, once: bool, as_json: bool) -> None:
    """Rebuild the live models from the model topic, then log each switch until Ctrl-C."""
    from batch.models_command import follow_models

    follow_models(settings, once, as_json)


cli.add_command(drift_command)
for _command in storage_commands:  # stats, export, prune, compact
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="bookloop")


if __name__ == "__main__":
    main()
