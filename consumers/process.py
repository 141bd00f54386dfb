"""A landing worker in a child process (`bookloop worker`), for the demo, tests and benchmarks."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from monitoring.scrape import scrape
from schemas.errors import BookloopError
from schemas.settings import Settings


class WorkerProcess:
    def __init__(self, settings: Settings, log_path: str | Path, log_level: str = "INFO",
                 extra_env: dict[str, str] | None = None):
        self.settings = settings
        self.extra_env = extra_env or {}
        self.log_path = Path(log_path)
        self.log_level = log_level
        self.proc: subprocess.Popen | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.web_port}/metrics"

    def start(self) -> "WorkerProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.settings.to_env(), "PYTHONUNBUFFERED": "1", **self.extra_env}
        command = [sys.executable, "-m", "batch.cli", "--log-level", self.log_level, "worker"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until /metrics answers (the worker is up; partitions follow after the group join)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BookloopError(f"worker exited with {self.proc.returncode}; log tail:\n{self.log_tail()}")
            try:
                scrape(self.metrics_url, timeout=1.0)
                return
            except OSError:
                time.sleep(0.2)
        raise BookloopError(f"worker did not serve {self.metrics_url} within {timeout} s; "
                            f"log tail:\n{self.log_tail()}")

    def metrics(self, attempts: int = 5) -> dict[str, float]:
        """Current metrics; a busy worker may answer slowly, so transient failures are retried."""
        for attempt in range(attempts):
            if self.proc.poll() is not None:
                raise BookloopError(f"worker exited with {self.proc.returncode}; log tail:\n{self.log_tail()}")
            try:
                return scrape(self.metrics_url, timeout=10.0)
            except OSError:
                if attempt == attempts - 1:
                    raise
                time.sleep(1.0)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (Faust stops gracefully), SIGKILL after `timeout`."""
        return self._end(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        return self._end(signal.SIGKILL, 10.0)

    def _end(self, sig: int, timeout: float) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        os.killpg(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()
