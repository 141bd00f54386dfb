"""Kafka security settings reach every client (librdkafka and Faust/aiokafka) from the one
Settings object, are checked with clear messages, and the secrets are never printed."""
from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
import uuid
from pathlib import Path

import faust
import pytest

from consumers import topic_tail
from consumers.app import faust_app
from consumers.kafka_auth import broker_credentials
from producers import publisher, schema_topic, topics
from producers.embedded_broker import free_port
from schemas.errors import ConfigError
from schemas.kafka_client import client_config, ssl_context
from schemas.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SASL = {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "bookloop", "KAFKA_SASL_PASSWORD": "pw-never-shown"}


def sasl_settings(**env: str) -> Settings:
    return Settings.from_env({**SASL, **env})


def test_plaintext_adds_nothing_and_sasl_ssl_adds_everything(tmp_path):
    assert client_config(Settings.from_env({})) == {"bootstrap.servers": "127.0.0.1:9092"}
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here")
    assert client_config(sasl_settings(KAFKA_SSL_CA_LOCATION=str(ca)), **{"group.id": "g"}) == {
        "bootstrap.servers": "127.0.0.1:9092", "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "bookloop", "sasl.password": "pw-never-shown", "ssl.ca.location": str(ca), "group.id": "g"}


def test_every_confluent_client_is_built_with_the_security_settings(monkeypatch):
    settings, seen = sasl_settings(), []
    monkeypatch.setattr(topics, "AdminClient", lambda conf: seen.append(("admin", conf)))
    monkeypatch.setattr(topic_tail, "Consumer", lambda conf: seen.append(("tail", conf)))
    topics.admin_client(settings)
    topic_tail.assign_only_consumer(settings, "g")

    def schema_reader(conf):
        seen.append(("schemas", conf))
        raise LookupError("captured")   # stop before it would connect

    monkeypatch.setattr(schema_topic, "Consumer", schema_reader)
    with pytest.raises(LookupError):
        schema_topic.read_announced(settings)
    seen.append(("producer", publisher.producer_config(settings)))
    assert [name for name, _ in seen] == ["admin", "tail", "schemas", "producer"]
    for name, conf in seen:
        assert (conf["security.protocol"], conf["sasl.password"]) == ("SASL_SSL", "pw-never-shown"), name


def test_no_module_builds_a_kafka_client_config_by_hand():
    """Every client starts from schemas.kafka_client.client_config (the embedded broker's own
    admin client, which only ever talks to the local Tansu broker, is the one exception)."""
    offenders = []
    for package in ("schemas", "producers", "consumers", "batch", "monitoring"):
        for path in (ROOT / package).glob("*.py"):
            if path.name in ("kafka_client.py", "embedded_broker.py"):
                continue
            if re.search(r"""["']bootstrap\.servers["']""", path.read_text()):
                offenders.append(f"{package}/{path.name}")
    assert not offenders, f"use client_config(settings, ...) in {offenders}"


def test_the_faust_worker_gets_the_same_credentials():
    assert broker_credentials(Settings.from_env({})) is None
    plain = broker_credentials(Settings.from_env({**SASL, "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}))
    assert isinstance(plain, faust.SASLCredentials) and plain.protocol.value == "SASL_PLAINTEXT"
    tls = broker_credentials(sasl_settings())
    assert (tls.protocol.value, tls.mechanism.value, tls.username) == ("SASL_SSL", "SCRAM-SHA-512", "bookloop")
    assert isinstance(tls.ssl_context, ssl.SSLContext)
    assert isinstance(broker_credentials(Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "SSL"})), faust.SSLCredentials)
    app = faust_app(sasl_settings())
    assert app.conf.broker_credentials.username == "bookloop"
    assert "pw-never-shown" not in repr(app.conf.broker_credentials)


@pytest.mark.parametrize("env, message", [
    ({"KAFKA_SECURITY_PROTOCOL": "SASL"}, "use one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
    ({"KAFKA_SASL_MECHANISM": "GSSAPI"}, "use one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u"}, "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
    ({"KAFKA_SSL_CERTIFICATE_LOCATION": "c.pem"}, "needs both KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION"),
])
def test_inconsistent_settings_are_refused_with_the_variable_to_fix(env, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Settings.from_env(env)


def test_a_missing_certificate_file_names_its_variable(tmp_path):
    settings = Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": str(tmp_path / "no.pem")})
    for build in (client_config, ssl_context):
        with pytest.raises(ConfigError, match="KAFKA_SSL_CA_LOCATION=.*is not a readable file"):
            build(settings)


def test_secrets_stay_out_of_repr_but_reach_child_processes():
    settings = sasl_settings(KAFKA_SSL_KEY_PASSWORD="key-pw", SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO="u:reg-pw")
    for secret in ("pw-never-shown", "key-pw", "reg-pw"):
        assert secret not in repr(settings) and secret not in str(settings)
    assert settings.to_env()["KAFKA_SASL_PASSWORD"] == "pw-never-shown"   # env, never argv or logs


def test_a_failing_run_never_prints_the_password(tmp_path):
    password = f"pw-{uuid.uuid4().hex}"
    env = {**os.environ, "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
           "KAFKA_SASL_USERNAME": "bookloop", "KAFKA_SASL_PASSWORD": password,
           "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", "BOOKLOOP_DELIVERY_TIMEOUT_SECONDS": "2"}
    for command in (["replay", "--limit", "5"], ["create-topics"]):
        run = subprocess.run([sys.executable, "-m", "batch.cli", "--log-level", "DEBUG", *command], env=env,
                             capture_output=True, text=True, timeout=60, cwd=tmp_path)
        output = run.stdout + run.stderr
        assert run.returncode == 1 and "Error: Kafka at 127.0.0.1:" in output, output
        assert password not in output
