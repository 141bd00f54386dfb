"""One frozen settings object per process, read from env vars and overridden by CLI flags.

Every field carries its env var and a one-line doc; the README configuration table repeats them
(a unit test keeps the two in step).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from schemas.errors import ConfigError


def _setting(default: Any, env: str, doc: str) -> Any:
    return field(default=default, metadata={"env": env, "doc": doc})


def _secret(env: str, doc: str) -> Any:
    """A secret: kept out of repr (and so out of logs and error messages); empty by default."""
    return field(default="", repr=False, metadata={"env": env, "doc": doc, "secret": True})


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str = _setting(
        "127.0.0.1:9092", "KAFKA_BOOTSTRAP_SERVERS", "Kafka bootstrap servers (host:port,...)")
    data_dir: str = _setting(
        "bookloop-data", "BOOKLOOP_DATA_DIR", "Root of the parquet store and model registry")
    web_port: int = _setting(6066, "BOOKLOOP_WEB_PORT", "Worker web port (/metrics, HTTP API)")
    web_host: str = _setting("127.0.0.1", "BOOKLOOP_WEB_HOST", "Worker web bind address")
    outcomes_topic: str = _setting(
        "booking-outcomes", "BOOKLOOP_OUTCOMES_TOPIC", "Topic of Avro booking outcome events")
    dlq_topic: str = _setting(
        "booking-outcomes.dlq", "BOOKLOOP_DLQ_TOPIC", "Dead-letter topic (original bytes + reason header)")
    model_topic: str = _setting(
        "model-updates", "BOOKLOOP_MODEL_TOPIC", "Compacted topic of ModelUpdated events")
    drift_topic: str = _setting("drift-events", "BOOKLOOP_DRIFT_TOPIC", "Topic of DriftDetected events")
    schema_topic: str = _setting(
        "bookloop-schemas", "BOOKLOOP_SCHEMA_TOPIC",
        "Compacted topic where producers announce their Avro writer schemas (embedded mode)")
    pushgateway_url: str = _setting(
        "", "BOOKLOOP_PUSHGATEWAY_URL", "Pushgateway for retrain metrics (host:port or URL); empty: no push")
    group_id: str = _setting("bookloop-worker", "BOOKLOOP_GROUP_ID", "Consumer group (Faust app id) of the worker")
    partitions: int = _setting(4, "BOOKLOOP_PARTITIONS", "Partitions when bookloop creates the outcomes topic")
    window_seconds: int = _setting(
        86400, "BOOKLOOP_WINDOW_SECONDS", "Event-time tumbling window size; must divide one day")
    lateness_seconds: int = _setting(
        3600, "BOOKLOOP_LATENESS_SECONDS", "Allowed lateness before a window closes (late events still land)")
    flush_max_events: int = _setting(
        50000, "BOOKLOOP_FLUSH_MAX_EVENTS", "Flush all open windows when this many events are buffered")
    flush_interval_seconds: float = _setting(
        10.0, "BOOKLOOP_FLUSH_INTERVAL_SECONDS", "Max wall time from an event's produce (or its read, for a backlog) to its flush")
    dedupe_horizon_days: int = _setting(
        7, "BOOKLOOP_DEDUPE_HORIZON_DAYS", "Event-time horizon within which a repeated event_id is dropped")
    session_timeout_seconds: float = _setting(
        10.0, "BOOKLOOP_SESSION_TIMEOUT_SECONDS", "Consumer session timeout (Tansu joins take about half)")
    durability: str = _setting(
        "syncfs", "BOOKLOOP_DURABILITY",
        "How a flush makes its files durable before acking: syncfs (two syncfs calls per flush; Linux) or fsync (every file and folder)")
    decode_helpers: int = _setting(
        1, "BOOKLOOP_DECODE_HELPERS",
        "Child processes of the worker that decode and validate batches while it lands the previous one (0-64; 0: decode in the worker)")
    take_batch: int = _setting(1000, "BOOKLOOP_TAKE_BATCH", "Events the worker takes from Faust per batch")
    max_message_bytes: int = _setting(
        1_000_000, "BOOKLOOP_MAX_MESSAGE_BYTES", "Larger outcome messages are dead-lettered")
    delivery_timeout_seconds: float = _setting(
        30.0, "BOOKLOOP_DELIVERY_TIMEOUT_SECONDS", "Producer gives up on a message after this long")
    api_token: str = field(default="", repr=False, metadata={  # a secret: kept out of repr and logs
        "env": "BOOKLOOP_API_TOKEN", "doc": "When set, POST /learn needs `Authorization: Bearer <token>`"})
    api_max_body_bytes: int = _setting(
        1_048_576, "BOOKLOOP_API_MAX_BODY_BYTES", "Larger POST /learn bodies are refused with 413")
    drift_reference_days: int = _setting(
        30, "BOOKLOOP_DRIFT_REFERENCE_DAYS", "Days of event time in the drift reference window")
    drift_current_days: int = _setting(
        7, "BOOKLOOP_DRIFT_CURRENT_DAYS",
        "Days of event time in the current drift window (ends with the newest day)")
    drift_ks_p: float = _setting(0.05, "BOOKLOOP_DRIFT_KS_P", "A feature drifted when its KS p-value is below this")
    drift_psi: float = _setting(0.2, "BOOKLOOP_DRIFT_PSI", "A feature drifted when its PSI is above this")
    drift_share: float = _setting(
        0.25, "BOOKLOOP_DRIFT_SHARE", "Retrain recommended when more than this share of features drifted")
    drift_min_samples: int = _setting(
        50, "BOOKLOOP_DRIFT_MIN_SAMPLES", "Fewer values in either window: insufficient data, never drifted")
    drift_psi_bins: int = _setting(10, "BOOKLOOP_DRIFT_PSI_BINS", "PSI bins (reference quantiles)")
    drift_day_samples: int = _setting(
        2000, "BOOKLOOP_DRIFT_DAY_SAMPLES",
        "Worker keeps at most this many rows per property and day for drift")
    drift_eval_interval_seconds: float = _setting(
        5.0, "BOOKLOOP_DRIFT_EVAL_INTERVAL_SECONDS",
        "The worker re-evaluates a property's drift at most this often as its windows land; 0: every flush")
    metrics_max_properties: int = _setting(
        50, "BOOKLOOP_METRICS_MAX_PROPERTIES",
        "Worker tracks drift and exports metrics for at most this many properties")
    store_uri: str = _setting(
        "", "BOOKLOOP_STORE_URI",
        "Where batch jobs (retrain, stats) read landed outcomes: empty = <data_dir>/outcomes, or a "
        "pyarrow.fs URI of that folder (file://, s3://, gs://)")
    schema_registry_url: str = _setting(
        "", "SCHEMA_REGISTRY_URL",
        "Confluent Schema Registry (http(s)://host:8081); set: producers write the Confluent wire format")
    schema_registry_user_info: str = _secret(
        "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", "`user:password` for the Schema Registry's basic auth")
    kafka_security_protocol: str = _setting(
        "PLAINTEXT", "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    kafka_sasl_mechanism: str = _setting(
        "PLAIN", "KAFKA_SASL_MECHANISM", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* protocols)")
    kafka_sasl_username: str = _setting("", "KAFKA_SASL_USERNAME", "SASL user name (SASL_* protocols)")
    kafka_sasl_password: str = _secret("KAFKA_SASL_PASSWORD", "SASL password (SASL_* protocols)")
    kafka_ssl_ca_location: str = _setting(
        "", "KAFKA_SSL_CA_LOCATION", "CA bundle (PEM) the brokers' certificates are checked against; empty: system CAs")
    kafka_ssl_certificate_location: str = _setting(
        "", "KAFKA_SSL_CERTIFICATE_LOCATION", "Client certificate (PEM) for mutual TLS")
    kafka_ssl_key_location: str = _setting("", "KAFKA_SSL_KEY_LOCATION", "Client private key (PEM) for mutual TLS")
    kafka_ssl_key_password: str = _secret("KAFKA_SSL_KEY_PASSWORD", "Password of the client private key, if encrypted")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Defaults < env vars < explicit overrides (CLI flags; None means 'not given')."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is not None and raw != "":
                values[f.name] = _coerce(f, raw)
        for name, value in overrides.items():
            if value is not None:
                values[name] = value
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        if self.window_seconds <= 0 or 86400 % self.window_seconds:
            raise ConfigError(f"{_named('window_seconds')}={self.window_seconds} must be positive and divide 86400")
        for name in ("lateness_seconds", "dedupe_horizon_days", "drift_eval_interval_seconds", "decode_helpers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{_named(name)} must be >= 0, got {getattr(self, name)}")
        for name in ("partitions", "flush_max_events", "take_batch", "max_message_bytes", "api_max_body_bytes"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{_named(name)} must be > 0, got {getattr(self, name)}")
        if self.flush_interval_seconds <= 0 or self.session_timeout_seconds <= 0:
            raise ConfigError(f"{_named('flush_interval_seconds')} and {_named('session_timeout_seconds')} must be > 0")
        for name in ("drift_reference_days", "drift_current_days"):
            if getattr(self, name) > MAX_WINDOW_DAYS:
                raise ConfigError(f"{_named(name)} must be at most {MAX_WINDOW_DAYS} (100 years), got {getattr(self, name)}")
        for name in ("drift_reference_days", "drift_current_days", "drift_min_samples",
                     "drift_day_samples", "metrics_max_properties"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{_named(name)} must be > 0, got {getattr(self, name)}")
        if not (0 < self.drift_ks_p < 1 and 0 <= self.drift_share < 1 and self.drift_psi > 0
                and self.drift_psi_bins >= 2):
            raise ConfigError("drift thresholds need 0 < ks_p < 1, 0 <= share < 1, psi > 0 and psi_bins >= 2")
        if self.decode_helpers > MAX_DECODE_HELPERS:
            raise ConfigError(f"{_named('decode_helpers')} must be at most {MAX_DECODE_HELPERS}, got "
                              f"{self.decode_helpers} (more helpers than cores only slow start-up)")
        if self.durability not in DURABILITY_MODES:
            raise ConfigError(f"BOOKLOOP_DURABILITY={self.durability!r}: use one of {', '.join(DURABILITY_MODES)}")
        if not 1 <= self.web_port <= 65535:
            raise ConfigError(f"{_named('web_port')} must be between 1 and 65535, got {self.web_port}")
        if not self.group_id.strip():
            raise ConfigError(f"{_named('group_id')} must not be empty")
        _check_kafka_security(self)

    def to_env(self) -> dict[str, str]:
        """The env vars that make a child process (a worker) see these same settings."""
        return {f.metadata["env"]: str(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> "Settings":
        new = dataclasses.replace(self, **changes)
        new.check()
        return new


def _named(name: str) -> str:
    """A setting as a user sets it: its env var, and the field (and CLI flag) name."""
    return f"{Settings.__dataclass_fields__[name].metadata['env']} ({name})"


MAX_DECODE_HELPERS = 64
MAX_WINDOW_DAYS = 36_500   # drift windows counted back from an as-of day stay far from year 1
DURABILITY_MODES = ("syncfs", "fsync")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _check_kafka_security(settings: Settings) -> None:
    protocol, mechanism = settings.kafka_security_protocol, settings.kafka_sasl_mechanism
    if protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(f"KAFKA_SECURITY_PROTOCOL={protocol!r}: use one of {', '.join(SECURITY_PROTOCOLS)}")
    if mechanism not in SASL_MECHANISMS:
        raise ConfigError(f"KAFKA_SASL_MECHANISM={mechanism!r}: use one of {', '.join(SASL_MECHANISMS)}")
    if protocol.startswith("SASL_") and not (settings.kafka_sasl_username and settings.kafka_sasl_password):
        raise ConfigError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
    if bool(settings.kafka_ssl_certificate_location) != bool(settings.kafka_ssl_key_location):
        raise ConfigError("mutual TLS needs both KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION")


def _coerce(f: dataclasses.Field, raw: str) -> Any:
    kind = f.type if isinstance(f.type, type) else {"int": int, "float": float, "str": str}[f.type]
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{f.metadata['env']}={raw!r} is not a valid {kind.__name__}") from None


def settings_table() -> list[tuple[str, str, Any, str]]:
    """(env var, field, default, doc) rows, for the README and `bookloop config`."""
    return [(f.metadata["env"], f.name, f.default, f.metadata["doc"]) for f in dataclasses.fields(Settings)]
