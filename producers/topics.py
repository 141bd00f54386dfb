"""Create bookloop's topics (idempotently) and look up topic ids."""
from __future__ import annotations

import logging

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.errors import BrokerUnavailable, ConfigError
from schemas.kafka_client import client_config
from schemas.settings import Settings

log = logging.getLogger(__name__)

_COMPACT = {"cleanup.policy": "compact"}
_UNREACHABLE = {KafkaError._TIMED_OUT, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN}


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(client_config(settings))


def probe(settings: Settings, timeout: float = 5.0) -> None:
    """Raise BrokerUnavailable unless Kafka answers a metadata request within `timeout`."""
    try:
        admin_client(settings).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerUnavailable(f"Kafka at {settings.bootstrap_servers} did not answer within "
                                f"{timeout:.0f} s: {exc.args[0].str()}") from None


def topic_specs(settings: Settings, replication_factor: int = 1) -> list[NewTopic]:
    """Outcomes, DLQ and drift with `settings.partitions`; the model and schema topics compacted,
    with one partition."""
    n = settings.partitions
    return [NewTopic(settings.outcomes_topic, n, replication_factor),
            NewTopic(settings.dlq_topic, n, replication_factor),
            NewTopic(settings.drift_topic, n, replication_factor),
            NewTopic(settings.model_topic, 1, replication_factor, config=dict(_COMPACT)),
            NewTopic(settings.schema_topic, 1, replication_factor, config=dict(_COMPACT))]


def ensure_topics(settings: Settings, admin: AdminClient | None = None,
                  replication_factor: int = 1) -> list[str]:
    """Create the missing topics; returns the names that were created (existing ones are fine)."""
    admin = admin or admin_client(settings)
    created = []
    timeout = settings.delivery_timeout_seconds
    specs = topic_specs(settings, replication_factor)
    futures = admin.create_topics(specs, request_timeout=timeout, operation_timeout=timeout)
    for spec in specs:
        error = _creation_error(futures[spec.topic], settings, timeout)
        if error is not None and spec.config:
            error = _retry_without_config(admin, spec, error, settings, timeout)
        if error is None:
            created.append(spec.topic)
        elif error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise ConfigError(f"could not create topic {spec.topic!r} on {settings.bootstrap_servers}: "
                              f"{error.str()}")
    return created


def _retry_without_config(admin: AdminClient, spec: NewTopic, error: KafkaError,
                          settings: Settings, timeout: float) -> KafkaError | None:
    if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
        return error
    log.warning("broker rejected config %s for topic %r (%s); creating it without",
                spec.config, spec.topic, error.str())
    plain = NewTopic(spec.topic, spec.num_partitions, spec.replication_factor)
    future = admin.create_topics([plain], request_timeout=timeout, operation_timeout=timeout)[spec.topic]
    return _creation_error(future, settings, timeout)


def _creation_error(future, settings: Settings, timeout: float) -> KafkaError | None:
    """None when the topic was created, else the broker's error; unreachable brokers raise."""
    try:
        future.result(timeout=timeout + 5)
        return None
    except KafkaException as exc:
        return _unless_unreachable(exc.args[0], settings)


def _unless_unreachable(error: KafkaError, settings: Settings) -> KafkaError:
    if error.code() in _UNREACHABLE:
        raise BrokerUnavailable(f"Kafka at {settings.bootstrap_servers} did not answer: {error.str()}")
    return error


def topic_id(settings: Settings, topic: str, admin: AdminClient | None = None) -> str:
    """The topic's id as Kafka prints it (URL-safe base64), or "0" when the broker reports none."""
    admin = admin or admin_client(settings)
    future = admin.describe_topics(TopicCollection([topic]),
                                   request_timeout=settings.delivery_timeout_seconds)[topic]
    try:
        description = future.result(timeout=settings.delivery_timeout_seconds + 5)
    except KafkaException as exc:
        error = _unless_unreachable(exc.args[0], settings)
        raise ConfigError(f"cannot describe topic {topic!r}: {error.str()}") from None
    uuid = description.topic_id
    if uuid is None or (uuid.get_most_significant_bits() == 0 and uuid.get_least_significant_bits() == 0):
        return "0"
    # Kafka shows topic ids as URL-safe base64 (no "/" or "+"), which also makes them safe in file names
    return str(uuid).replace("+", "-").replace("/", "_")


def committed_past(settings: Settings, group_id: str, last_offsets: dict[int, int]) -> bool:
    """Whether `group_id` has committed past each partition's last offset on the outcomes topic
    (the producer's delivery offsets say where the end is: Tansu's high watermarks are wrong)."""
    consumer = Consumer({**client_config(settings), "group.id": group_id, "enable.auto.commit": False})
    try:
        wanted = [TopicPartition(settings.outcomes_topic, p) for p in last_offsets]
        committed = {tp.partition: tp.offset for tp in consumer.committed(wanted, timeout=10)}
    finally:
        consumer.close()
    return all(committed[p] > last for p, last in last_offsets.items())
