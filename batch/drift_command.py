"""The `bookloop drift` command: prints the seed's report (or JSON) and can write an HTML report.

Exit codes: 0 no drift, 1 drift (retrain recommended for a property), 2 error with a message.
Heavy imports happen when the command runs, so the rest of the CLI starts fast.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from batch.storage_commands import as_of_date_option
from schemas.errors import BookloopError
from schemas.settings import MAX_WINDOW_DAYS, Settings


class DriftCommandError(click.ClickException):
    exit_code = 2


def _feature_list(features: tuple[str, ...], extra: tuple[str, ...]) -> list[str]:
    """`--features a b c` arrives as features=(a,) and extra=(b, c); commas separate too."""
    if extra and not features:
        raise click.UsageError(f"unexpected arguments {' '.join(extra)} (features go after --features)")
    return [name for item in features + extra for name in item.split(",") if name]


@click.command("drift")
@click.option("--property-id", help="Property to check")
@click.option("--all-properties", is_flag=True, help="Check every property in the store")
@click.option("--features", multiple=True, metavar="F1 [F2 ...]",
              help="Features to check (default: every numeric feature with data)")
@click.argument("extra_features", nargs=-1, metavar="")
@click.option("--reference-days", type=click.IntRange(min=1, max=MAX_WINDOW_DAYS),
              help="Reference window in days [BOOKLOOP_DRIFT_REFERENCE_DAYS]")
@click.option("--current-days", type=click.IntRange(min=1, max=MAX_WINDOW_DAYS),
              help="Current window in days [BOOKLOOP_DRIFT_CURRENT_DAYS]")
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), callback=as_of_date_option,
              help="Last day of the current window (default: the newest landed day)")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of the text report")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Also write an HTML report here")
@click.option("--data-dir", help="Parquet store root [BOOKLOOP_DATA_DIR]")
def drift_command(property_id, all_properties, features, extra_features, reference_days, current_days,
                  as_of, as_json, html_path, data_dir) -> None:
    """Drift of the current vs the reference window; exit 0 no drift, 1 drift, 2 error."""
    if bool(property_id) == all_properties:
        raise click.UsageError("give either --property-id P or --all-properties")
    from pyarrow import ArrowException

    from batch.drift import drift_for
    from batch.drift_report import html_report, json_report, text_report

    try:
        settings = Settings.from_env(data_dir=data_dir, drift_reference_days=reference_days,
                                     drift_current_days=current_days)
        names = _feature_list(features, extra_features)
        reports = drift_for(settings, property_id, names, as_of.date() if as_of else None)
        if html_path:
            Path(html_path).write_text(html_report(reports), encoding="utf-8")
    except (BookloopError, OSError, ArrowException) as exc:
        raise DriftCommandError(str(exc)) from None
    click.echo(json_report(reports, many=all_properties) if as_json else "\n".join(map(text_report, reports)))
    if html_path:
        click.echo(f"HTML report written to {html_path}", err=True)
    sys.exit(1 if any(r.result.retrain_recommended for r in reports) else 0)
