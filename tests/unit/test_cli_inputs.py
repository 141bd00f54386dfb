"""Bad flag values of replay, demo and worker are usage errors (exit 2) before anything starts."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from batch.cli import cli


def run(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize("command", ["replay", "demo"])
@pytest.mark.parametrize("limit", ["0", "-1"])
def test_limit_below_one_is_refused(command, limit, tmp_path):
    result = run(command, "--limit", limit, "--bootstrap" if command == "replay" else "--data-dir",
                 "127.0.0.1:1" if command == "replay" else str(tmp_path / "d"))
    assert result.exit_code == 2, result.output
    assert f"Error: Invalid value for '--limit': {limit} is not in the range x>=1." in result.output
    assert not (tmp_path / "d").exists()   # the demo never started


@pytest.mark.parametrize("rate, shown", [("0", "0.0"), ("-1", "-1.0"), ("nan", "nan"), ("inf", "inf")])
def test_replay_rate_must_be_a_finite_number_above_zero(rate, shown):
    result = run("replay", "--rate", rate, "--bootstrap", "127.0.0.1:1")
    assert result.exit_code == 2, result.output
    assert f"Error: Invalid value for '--rate': {shown} is not a finite number > 0" in result.output


def test_demo_timeout_and_resend_fraction_are_checked(tmp_path):
    timeout = run("demo", "--timeout", "nan", "--data-dir", str(tmp_path / "d"))
    assert timeout.exit_code == 2 and "'--timeout': nan is not a finite number > 0" in timeout.output
    fraction = run("demo", "--resend-fraction", "2", "--data-dir", str(tmp_path / "d"))
    assert fraction.exit_code == 2 and "'--resend-fraction': 2.0 is not in the range 0<=x<=1." in fraction.output
