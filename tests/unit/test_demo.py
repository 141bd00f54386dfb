"""batch/demo.py pieces that need no broker."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batch.demo import _report
from schemas.settings import Settings


def test_report_of_an_empty_store_counts_everything_lost(tmp_path, capsys):
    settings = Settings.from_env({}, data_dir=str(tmp_path))
    assert _report(settings, produced=7, unique=5, m={}, seconds=2.0) is False
    summary = json.loads(capsys.readouterr().out.split("SUMMARY ", 1)[1])
    assert summary["landed"] == 0 and summary["lost"] == 5 and summary["properties"] == {}


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_sigterm_stops_the_demos_broker_and_worker(tmp_path):
    """`kill <demo pid>` (SIGTERM, not the terminal's Ctrl-C) used to leave Tansu and the worker running."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    demo = subprocess.Popen([sys.executable, "-m", "batch.cli", "demo", "--limit", "50", "--timeout", "60",
                             "--data-dir", str(tmp_path / "d")], env=env, cwd=Path(__file__).parents[2],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(children := _children(demo.pid)) < 2:   # the broker, then the worker
            assert demo.poll() is None and time.monotonic() < deadline, demo.stderr.read().decode()
            time.sleep(0.1)
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(60) == 143
        assert [pid for pid in children if _alive(pid)] == []
        assert b"Traceback" not in demo.stderr.read()
    finally:
        if demo.poll() is None:
            demo.kill()
