"""`bookloop stats | export | prune | compact`: the outcomes store from the command line.

The logic lives in consumers/storage.py and consumers/compaction.py (shared with the worker's
HTTP API); these commands parse flags, call it and print. Errors print one line and exit 1.
"""
from __future__ import annotations

import functools
import json
from datetime import date, datetime

import click

from schemas.errors import BookloopError
from schemas.settings import Settings

_DATE = click.DateTime(["%Y-%m-%d"])
AS_OF_RANGE = (date(1970, 1, 2), date(9999, 1, 1))   # the HTTP API's: room for windows counted back and forth


def check_as_of_day(day: date, text: str) -> None:
    """click.BadParameter (exit 2) unless `day` lies in AS_OF_RANGE (dates near year 1 or 9999 overflow)."""
    if not AS_OF_RANGE[0] <= day <= AS_OF_RANGE[1]:
        raise click.BadParameter(f"{text!r} must lie between {AS_OF_RANGE[0]} and {AS_OF_RANGE[1]}",
                                 param_hint="--as-of")


def as_of_date_option(ctx, param, value: datetime | None) -> datetime | None:
    """Callback of a click.DateTime `--as-of`: the same range check."""
    if value is not None:
        check_as_of_day(value.date(), value.date().isoformat())
    return value
_DATA_DIR = click.option("--data-dir", default=None, help="Parquet store root [BOOKLOOP_DATA_DIR]")


def _one_line_errors(command):
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (BookloopError, OSError) as exc:
            raise click.ClickException(str(exc)) from None
    return wrapper


def _storage(data_dir: str | None):
    from consumers.storage import OutcomesStorage

    settings = Settings.from_env(data_dir=data_dir)
    return OutcomesStorage(settings.data_dir, settings.store_uri)  # BOOKLOOP_STORE_URI: stats read that copy


@click.command("stats")
@click.option("--property-id", required=True, help="Property to describe")
@click.option("--as-of", default=None, help="'Recent' ends here: YYYY-MM-DD (end of that day, UTC) or ISO time; "
              "default now")
@click.option("--json", "as_json", is_flag=True, help="Print the seed's stats JSON")
@_DATA_DIR
@_one_line_errors
def stats_command(property_id: str, as_of: str | None, as_json: bool, data_dir: str | None) -> None:
    """The seed's outcome statistics of one property."""
    from consumers.storage import UnknownProperty

    stats = _storage(data_dir).get_statistics(property_id, _as_of(as_of))
    if not stats["exists"]:
        raise UnknownProperty(f"no outcomes stored for property {property_id!r}")
    if as_json:
        click.echo(json.dumps({"success": True, "property_id": property_id, "stats": stats}, sort_keys=True))
        return
    for name, value in stats.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        click.echo(f"{name + ':':<20}{value}")


@click.command("export")
@click.option("--property-id", required=True, help="Property to export")
@click.option("--start-date", type=_DATE, default=None, help="First event date to include (default: all)")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Parquet file to write (default: <data_dir>/training/<property>/outcomes_from_...parquet)")
@_DATA_DIR
@_one_line_errors
def export_command(property_id: str, start_date: datetime | None, output: str | None, data_dir: str | None) -> None:
    """One deduplicated parquet file of a property's outcomes, for training."""
    import pyarrow.parquet as pq

    path = _storage(data_dir).export_for_training(property_id, start_date.date() if start_date else None, output)
    click.echo(f"exported {pq.ParquetFile(path).metadata.num_rows} outcomes of {property_id} to {path}")


@click.command("prune")
@click.option("--before", type=_DATE, required=True, help="Delete every date partition before this date")
@click.option("--property-id", default=None, help="Only this property (default: all)")
@_DATA_DIR
@_one_line_errors
def prune_command(before: datetime, property_id: str | None, data_dir: str | None) -> None:
    """Retention: delete whole date partitions before a date (safe while the worker runs)."""
    removed = _storage(data_dir).delete_outcomes(property_id, before.date())
    scope = f"property {property_id}" if property_id else "all properties"
    click.echo(f"removed {removed['rows']} outcomes in {removed['partitions']} date partitions "
               f"before {before.date()} ({scope})")


@click.command("compact")
@click.option("--property-id", default=None, help="Only this property (default: all)")
@click.option("--min-files", type=click.IntRange(min=2), default=2, show_default=True,
              help="Compact a date partition holding at least this many part files")
@click.option("--min-age", "min_age", type=click.FloatRange(min=0), default=None,
              help="Skip partitions with a part file younger than this many seconds [600]")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON")
@_DATA_DIR
@_one_line_errors
def compact_command(property_id: str | None, min_files: int, min_age: float | None, as_json: bool,
                    data_dir: str | None) -> None:
    """Merge the part files of old date partitions into one file each (safe while the worker runs)."""
    from consumers.compaction import DEFAULT_MIN_AGE_SECONDS, CompactionPolicy, compact_store

    settings = Settings.from_env(data_dir=data_dir)
    policy = CompactionPolicy(settings.dedupe_horizon_days, min_files,
                              DEFAULT_MIN_AGE_SECONDS if min_age is None else min_age)
    report = compact_store(settings.data_dir, policy, property_id)
    if as_json:
        click.echo(json.dumps(report.as_dict(), sort_keys=True))
        return
    click.echo(f"compacted {report.partitions_compacted} date partitions: part files {report.files_before} -> "
               f"{report.files_after}, rows {report.rows_before} -> {report.rows_after} in those partitions")


def _as_of(text: str | None):
    from consumers.storage import parse_as_of

    if not text:
        return None
    try:
        as_of = parse_as_of(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither YYYY-MM-DD nor an ISO time with a timezone",
                                 param_hint="--as-of") from None
    check_as_of_day(as_of.date() if isinstance(as_of, datetime) else as_of, text)
    return as_of


storage_commands = [stats_command, export_command, prune_command, compact_command]
