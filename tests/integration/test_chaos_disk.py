"""Disk trouble: the store runs full mid-replay; the worker pauses, commits nothing it has not
landed, and resumes by itself when space returns."""
import subprocess
import time

import pytest

from chaos import BackgroundReplay, report_line, start_worker, temp_files, wait_committed
from producers.topics import ensure_topics


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_pauses_and_resumes_without_loss(settings_factory, tmp_path, small_disk):
    settings = settings_factory(tmp_path, data_dir=str(small_disk / "store"), flush_interval_seconds=1.0)
    ensure_topics(settings)
    worker = start_worker(settings, tmp_path, "worker")
    replay = BackgroundReplay(settings, limit=15_000)
    replay.start()
    report = replay.finish()
    try:
        deadline = time.monotonic() + 60
        while worker.metrics().get("bookloop_flush_errors_total", 0) == 0:
            assert time.monotonic() < deadline, "the 256 KiB store never filled up"
            time.sleep(0.5)
        time.sleep(3)
        assert "pausing consumption" in worker.log_tail(200_000)
        assert not temp_files(settings), "a failed flush must not leave files behind"
        subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
        wait_committed(settings, replay.publisher.delivered_offsets, timeout=120)
        assert "resuming consumption" in worker.log_tail(200_000)
    finally:
        worker.stop()
    rows, distinct = report_line("disk-full", report.sent, settings)
    assert (rows, distinct) == (report.unique, report.unique)
