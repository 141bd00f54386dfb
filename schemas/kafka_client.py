"""Kafka connection settings for every client, built from the one Settings object.

`client_config` is what each confluent-kafka client (producers, consumers, admin clients) starts
from, so they all reach the same brokers with the same security; the Faust worker (aiokafka)
gets the same settings through `ssl_context` (consumers/kafka_auth.py). Secrets go into the
client configuration only: never into a log line or an error message.
"""
from __future__ import annotations

import ssl
from pathlib import Path

from schemas.errors import ConfigError
from schemas.settings import Settings

_SSL_FILES = (  # librdkafka property, Settings field, env var
    ("ssl.ca.location", "kafka_ssl_ca_location", "KAFKA_SSL_CA_LOCATION"),
    ("ssl.certificate.location", "kafka_ssl_certificate_location", "KAFKA_SSL_CERTIFICATE_LOCATION"),
    ("ssl.key.location", "kafka_ssl_key_location", "KAFKA_SSL_KEY_LOCATION"),
)


def client_config(settings: Settings, **extra) -> dict:
    """bootstrap.servers + the security settings + `extra` (keys with dots: pass a dict via **{})."""
    return {"bootstrap.servers": settings.bootstrap_servers, **security_config(settings), **extra}


def security_config(settings: Settings) -> dict:
    """The librdkafka security properties (empty for PLAINTEXT)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    config = {"security.protocol": protocol}
    if protocol.startswith("SASL_"):
        config.update({"sasl.mechanism": settings.kafka_sasl_mechanism,
                       "sasl.username": settings.kafka_sasl_username,
                       "sasl.password": settings.kafka_sasl_password})
    if uses_tls(settings):
        for key, name, env in _SSL_FILES:
            if getattr(settings, name):
                config[key] = _existing_file(getattr(settings, name), env)
        if settings.kafka_ssl_key_password:
            config["ssl.key.password"] = settings.kafka_ssl_key_password
    return config


def uses_tls(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for aiokafka (None without TLS): the same CA, certificate and key as librdkafka."""
    if not uses_tls(settings):
        return None
    ca = settings.kafka_ssl_ca_location
    context = ssl.create_default_context(
        cafile=_existing_file(ca, "KAFKA_SSL_CA_LOCATION") if ca else None)
    if settings.kafka_ssl_certificate_location:
        try:
            context.load_cert_chain(
                _existing_file(settings.kafka_ssl_certificate_location, "KAFKA_SSL_CERTIFICATE_LOCATION"),
                _existing_file(settings.kafka_ssl_key_location, "KAFKA_SSL_KEY_LOCATION"),
                password=settings.kafka_ssl_key_password or None)
        except ssl.SSLError as exc:
            raise ConfigError(f"cannot load the client certificate/key ({exc.reason}): check "
                              "KAFKA_SSL_CERTIFICATE_LOCATION, KAFKA_SSL_KEY_LOCATION and KAFKA_SSL_KEY_PASSWORD") from None
    return context


def _existing_file(path: str, env: str) -> str:
    if not Path(path).is_file():
        raise ConfigError(f"{env}={path!r} is not a readable file")
    return path
