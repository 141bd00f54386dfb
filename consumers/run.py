"""Start the landing worker process: topics, Faust worker, logging."""
from __future__ import annotations

import errno
import logging
import os
import socket
import tempfile
import time
from pathlib import Path

import faust

from consumers.app import create_worker
from producers.topics import ensure_topics, probe
from schemas.errors import BrokerUnavailable, ConfigError
from schemas.settings import Settings

log = logging.getLogger("bookloop.worker")


def wait_for_kafka(settings: Settings, create_topics: bool, sleep=time.sleep, max_delay: float = 30.0) -> None:
    """Block until Kafka answers (and the topics exist), retrying with exponential backoff."""
    delay = 1.0
    while True:
        try:
            probe(settings)
            if create_topics:
                created = ensure_topics(settings)
                if created:
                    log.info("created topics %s", created)
            return
        except BrokerUnavailable as exc:
            log.warning("waiting for Kafka: %s; retrying in %.0f s", exc, delay)
            sleep(delay)
            delay = min(delay * 2, max_delay)


def prepare_data_dir(data_dir: str | Path) -> None:
    """Create the data folder and prove it is writable, or say in one line why it cannot be used."""
    path = Path(data_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        handle, probe_file = tempfile.mkstemp(prefix=".write-check-", dir=path)
        os.close(handle)
        os.unlink(probe_file)
    except FileExistsError:
        raise ConfigError(f"data dir {path} exists and is not a folder (--data-dir / BOOKLOOP_DATA_DIR)") from None
    except OSError as exc:
        raise ConfigError(f"data dir {path} cannot be written: {exc.strerror or exc} "
                          "(--data-dir / BOOKLOOP_DATA_DIR)") from None


def check_web_port_free(host: str, port: int) -> None:
    """Bind the web address once before Faust does: an address in use is one line, not a traceback."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.create_server((host, port), family=family):   # SO_REUSEADDR, like aiohttp's bind
            pass
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"web port {host}:{port} is already in use (another worker?); pick another "
                              "with --web-port / BOOKLOOP_WEB_PORT") from None
        raise ConfigError(f"cannot serve the web port on {host}:{port}: {exc.strerror or exc} "
                          "(--web-port / BOOKLOOP_WEB_PORT, BOOKLOOP_WEB_HOST)") from None


def run_worker(settings: Settings, create_topics: bool = True) -> None:
    prepare_data_dir(settings.data_dir)   # local problems first: waiting for Kafka may take long
    check_web_port_free(settings.web_host, settings.web_port)
    wait_for_kafka(settings, create_topics)
    app, _ = create_worker(settings)
    log.warning("worker %s consuming %s from %s, landing into %s (durability %s, %d decode helpers), "
                "web on %s:%d", settings.group_id, settings.outcomes_topic, settings.bootstrap_servers,
                settings.data_dir, settings.durability, settings.decode_helpers, settings.web_host,
                settings.web_port)
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    worker = faust.Worker(app, loglevel={"warning": "warn"}.get(level, level), quiet=True,
                          redirect_stdouts=False, override_logging=False)
    if not worker.stdout.isatty():
        worker.spinner = None   # its cursor codes would end up in log files
    worker.execute_from_commandline()
