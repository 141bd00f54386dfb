"""batch/demo.py pieces that need no broker."""
from __future__ import annotations

import json

from batch.demo import _report
from schemas.settings import Settings


def test_report_of_an_empty_store_counts_everything_lost(tmp_path, capsys):
    settings = Settings.from_env({}, data_dir=str(tmp_path))
    assert _report(settings, produced=7, unique=5, m={}, seconds=2.0) is False
    summary = json.loads(capsys.readouterr().out.split("SUMMARY ", 1)[1])
    assert summary["landed"] == 0 and summary["lost"] == 5 and summary["properties"] == {}
