"""`bookloop stats | export | prune | compact`: exit codes and one-line errors for bad input."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from batch.cli import cli


def run(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize("as_of", ["9999-12-31", "0001-01-01", "1969-12-31T23:00:00+00:00"])
def test_stats_refuses_an_as_of_out_of_range(tmp_path, outcome_store, as_of):
    outcome_store(tmp_path, n=50)
    result = run("stats", "--property-id", "city", "--as-of", as_of, "--data-dir", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert f"Error: Invalid value for --as-of: '{as_of}' must lie between 1970-01-02 and 9999-01-01" in result.output


@pytest.mark.parametrize("as_of", ["1970-01-02", "9999-01-01"])
def test_stats_accepts_the_ends_of_the_range(tmp_path, outcome_store, as_of):
    outcome_store(tmp_path, n=50)
    result = run("stats", "--property-id", "city", "--as-of", as_of, "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "total_records:      50" in result.output and "last_7_days=0" in result.output
