"""Fixtures for tests against a real Kafka-protocol broker (embedded Tansu, one per session)."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from producers.embedded_broker import EmbeddedBroker, free_port
from schemas.settings import Settings


def pytest_collection_modifyitems(config, items) -> None:
    """Every test under tests/integration talks to the broker: mark it `integration`."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    embedded = EmbeddedBroker().start()
    yield embedded
    embedded.stop()


@pytest.fixture
def topic_factory(broker) -> Callable[..., str]:
    """make(prefix="topic", partitions=1) -> the name of a new, empty topic."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})

    def make(prefix: str = "topic", partitions: int = 1) -> str:
        name = unique(prefix)
        future = admin.create_topics([NewTopic(name, partitions, 1)], request_timeout=15)[name]
        try:
            future.result(timeout=20)
        except KafkaException as exc:
            raise RuntimeError(f"could not create test topic {name!r} on {broker.bootstrap}: {exc}") from exc
        return name

    return make


@pytest.fixture
def settings_factory(broker, tmp_path) -> Callable[..., Settings]:
    """make(tmp_path=None, **overrides) -> Settings on the session broker with unique topics,
    group id and web port, and the data store under tmp_path/"store". Topics are not created."""

    default_dir = tmp_path

    def make(tmp_path: Path | None = None, **overrides: Any) -> Settings:
        base = Path(tmp_path or default_dir)
        values = dict(bootstrap_servers=broker.bootstrap, data_dir=str(base / "store"),
                      outcomes_topic=unique("outcomes"), dlq_topic=unique("dlq"),
                      model_topic=unique("models"), drift_topic=unique("drift"),
                      schema_topic=unique("schemas"),
                      group_id=unique("group"), web_port=free_port(), session_timeout_seconds=6.0,
                      delivery_timeout_seconds=15.0)
        values.update(overrides)
        return Settings.from_env({}, **values)

    return make


@pytest.fixture(autouse=True)
def no_worker_outlives_its_test():
    from chaos import STARTED

    yield
    while STARTED:
        STARTED.pop().kill()
