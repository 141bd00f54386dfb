"""Both wire formats on one topic: Avro single-object (C3 01) and Confluent (00 + schema id),
chosen per message; the registry side runs on the client library's in-memory registry (mock://),
shared by everything in one process that names the same URL."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import httpx2
import pytest
from confluent_kafka.schema_registry.error import SchemaRegistryError

from consumers.app import LandingWorker
from consumers.intake import Rejected, read_outcome
from schemas.codec import HEADER_SIZE, SCHEMA_DIR, default_codec
from schemas.errors import RegistryUnavailable
from schemas.registry import COMPATIBILITY, SchemaRegistry, registry_client, safe_url
from schemas.settings import Settings
from schemas.wire import WireCodec, subject_for

T = datetime(2016, 5, 1, tzinfo=timezone.utc)
OUTCOME = {"event_id": "e-1", "property_id": "city", "timestamp": T, "quoted_price": 90.0, "accepted": True,
           "final_price": 85.0}
NOW = datetime(2017, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def registry_settings() -> Settings:
    return Settings.from_env({"SCHEMA_REGISTRY_URL": f"mock://{uuid.uuid4().hex}"})


def decode(wire: WireCodec, value: bytes) -> dict | Rejected:
    return read_outcome(value, wire, 1_000_000, now=NOW)


def test_a_registry_producer_writes_the_confluent_frame_and_another_reader_decodes_it(registry_settings):
    producer = WireCodec.for_topic(registry_settings, "booking-outcomes")
    value = producer.encode(OUTCOME)
    schema_id = producer.schema_id()
    assert value[0] == 0 and int.from_bytes(value[1:5], "big") == schema_id
    assert value[5:] == default_codec().encode(OUTCOME)[HEADER_SIZE:]   # the same Avro body
    worker = WireCodec.for_topic(registry_settings, "booking-outcomes")    # its own cache, the same registry
    assert worker.needs_fetch(value)
    assert decode(worker, value)["final_price"] == 85.0
    assert not worker.needs_fetch(value)   # the writer schema is cached by id


def test_one_reader_takes_both_formats_message_by_message(registry_settings):
    worker = WireCodec.for_topic(registry_settings, "booking-outcomes")
    confluent = WireCodec.for_topic(registry_settings, "booking-outcomes").encode({**OUTCOME, "event_id": "a"})
    single_object = default_codec().encode({**OUTCOME, "event_id": "b"})
    assert single_object[:2] == b"\xc3\x01"
    assert [decode(worker, v)["event_id"] for v in (confluent, single_object, confluent)] == ["a", "b", "a"]


def test_an_older_writer_schema_from_the_registry_resolves_to_the_current_one(registry_settings):
    old = (SCHEMA_DIR / "history" / "booking_outcome_v0.avsc").read_text()
    registry = SchemaRegistry(registry_settings)
    old_id = registry.schema_id(subject_for("booking-outcomes"), old)
    record = {k: v for k, v in OUTCOME.items() if k != "event_id"}
    body = default_codec().encode_with(record, SCHEMA_DIR / "history" / "booking_outcome_v0.avsc")[HEADER_SIZE:]
    outcome = decode(WireCodec.for_topic(registry_settings, "booking-outcomes"), b"\x00" + old_id.to_bytes(4, "big") + body)
    assert outcome["features"] is None and outcome["event_id"]   # the reader's default; a derived id


@pytest.mark.parametrize("value, reason", [
    (b"\x00\x00\x01\x86\xa0" + b"\x02", "unknown_schema_id"),
    (b"\x00\x00\x01", "corrupt_body"),
    (b"\x07abc", "bad_marker"),
    (b"", "empty_message"),
])
def test_bad_messages_get_exact_reasons(registry_settings, value, reason):
    rejected = decode(WireCodec.for_topic(registry_settings, "booking-outcomes"), value)
    assert isinstance(rejected, Rejected) and rejected.reason == reason, rejected


def test_a_worker_without_a_registry_dead_letters_confluent_messages_with_a_reason(registry_settings):
    value = WireCodec.for_topic(registry_settings, "t").encode(OUTCOME)
    rejected = decode(WireCodec.for_topic(Settings.from_env({}), "t"), value)
    assert rejected.reason == "no_schema_registry" and "SCHEMA_REGISTRY_URL" in rejected.detail


@pytest.mark.parametrize("error", [httpx2.ConnectError("Connection refused"),
                                   SchemaRegistryError(503, 50003, "Error while forwarding the request")])
def test_an_unreachable_registry_is_registry_unavailable(registry_settings, monkeypatch, error):
    value = WireCodec.for_topic(registry_settings, "t").encode(OUTCOME)
    worker = WireCodec.for_topic(registry_settings, "t")

    def fail(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(worker.registry.client, "get_schema", fail)
    rejected = decode(worker, value)
    assert rejected.reason == "registry_unavailable" and "failed while fetching schema id" in rejected.detail


def test_producers_set_backward_compatibility_before_registering(registry_settings, monkeypatch):
    client = registry_client(registry_settings.schema_registry_url)
    calls = []
    monkeypatch.setattr(client, "set_config", lambda subject, config: calls.append((subject, config.compatibility)))
    WireCodec.for_topic(registry_settings, "orders").schema_id()
    assert calls == [("orders-value", COMPATIBILITY)]
    WireCodec.for_topic(registry_settings, "orders").schema_id()   # known now: looked up, not registered again
    assert len(calls) == 1


def test_a_rejected_schema_is_a_clear_error(registry_settings, monkeypatch):
    client = registry_client(registry_settings.schema_registry_url)

    def incompatible(*_args, **_kwargs):
        raise SchemaRegistryError(409, 409, "Schema being registered is incompatible with an earlier schema")

    monkeypatch.setattr(client, "register_schema", incompatible)
    with pytest.raises(RegistryUnavailable, match="not BACKWARD compatible"):
        WireCodec.for_topic(registry_settings, "orders").schema_id()


def test_registry_credentials_never_reach_messages():
    settings = Settings.from_env({"SCHEMA_REGISTRY_URL": "http://127.0.0.1:9", "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO":
                                  "svc:s3cret-pw"})
    assert safe_url("https://svc:s3cret-pw@registry:8081/x") == "https://registry:8081/x"
    registry = SchemaRegistry(settings)
    error = registry._unavailable("testing", RuntimeError("auth svc:s3cret-pw refused"))
    assert "s3cret-pw" not in str(error) and "s3cret-pw" not in repr(settings)


def test_the_worker_holds_the_stream_while_the_registry_is_down(registry_settings, monkeypatch):
    value = WireCodec.for_topic(registry_settings, "t").encode(OUTCOME)
    worker = LandingWorker.__new__(LandingWorker)   # only what _read needs: no Faust app, no broker
    worker.settings, worker.draining = registry_settings, False
    worker.wire = WireCodec.for_topic(registry_settings, "t")
    real, attempts = worker.wire.registry.client.get_schema, []

    def flaky(schema_id, *args, **kwargs):
        attempts.append(schema_id)
        if len(attempts) < 3:
            raise httpx2.ConnectError("Connection refused")
        return real(schema_id, *args, **kwargs)

    async def no_sleep(_seconds):
        return None

    monkeypatch.setattr(worker.wire.registry.client, "get_schema", flaky)
    monkeypatch.setattr("consumers.app.asyncio.sleep", no_sleep)
    outcome = asyncio.run(worker._read(value))
    assert len(attempts) == 3 and outcome["event_id"] == "e-1"   # retried, then decoded: not dead-lettered
    worker.draining, worker.wire = True, WireCodec.for_topic(registry_settings, "t")
    monkeypatch.setattr(worker.wire.registry.client, "get_schema", lambda *a, **k: (_ for _ in ()).throw(
        httpx2.ConnectError("down")))
    assert asyncio.run(worker._read(value)) is None   # revoked meanwhile: left for the next owner
