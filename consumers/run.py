"""Start the landing worker process: topics, Faust worker, logging."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import faust

from consumers.app import create_worker
from producers.topics import ensure_topics, probe
from schemas.errors import BrokerUnavailable
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


def run_worker(settings: Settings, create_topics: bool = True) -> None:
    wait_for_kafka(settings, create_topics)
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    app, _ = create_worker(settings)
    log.warning("worker %s consuming %s from %s, landing into %s, web on %s:%d",
                settings.group_id, settings.outcomes_topic, settings.bootstrap_servers,
                settings.data_dir, settings.web_host, settings.web_port)
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    worker = faust.Worker(app, loglevel={"warning": "warn"}.get(level, level), quiet=True,
                          redirect_stdouts=False, override_logging=False)
    worker.execute_from_commandline()
