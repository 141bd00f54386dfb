"""The two Avro wire formats on bookloop's topics, told apart by each message's first byte.

- `C3 01` + 8-byte schema fingerprint + body: Avro single-object encoding (schemas/codec.py),
  written when no Schema Registry is configured (the embedded mode).
- `00` + 4-byte big-endian schema id + body: the Confluent wire format, written when
  SCHEMA_REGISTRY_URL is set; the writer schema is fetched from the registry by id (once).

Either way the body is resolved to the current reader schema, so both kinds of producer can
share one topic. This is the one place that looks at the first bytes.
"""
from __future__ import annotations

from schemas.codec import DEFAULT_SCHEMA, HEADER_SIZE, MARKER, Codec, default_codec
from schemas.errors import CodecError
from schemas.registry import SchemaRegistry
from schemas.settings import Settings

CONFLUENT_MAGIC = 0
CONFLUENT_HEADER_SIZE = 5


def subject_for(topic: str) -> str:
    """The registry subject of a topic's values (Confluent's TopicNameStrategy)."""
    return f"{topic}-value"


def is_confluent(data: bytes | None) -> bool:
    return bool(data) and data[0] == CONFLUENT_MAGIC


def confluent_schema_id(data: bytes) -> int:
    if len(data) < CONFLUENT_HEADER_SIZE:
        raise CodecError(f"Confluent-framed message of {len(data)} bytes is shorter than its "
                         f"{CONFLUENT_HEADER_SIZE}-byte header; it was truncated", reason="corrupt_body")
    return int.from_bytes(data[1:CONFLUENT_HEADER_SIZE], "big")


class WireCodec:
    """Encodes in the configured format; decodes both formats, whichever each message uses."""

    def __init__(self, codec: Codec | None = None, registry: SchemaRegistry | None = None,
                 subject: str | None = None):
        self.codec = codec or default_codec()
        self.registry = registry
        self.subject = subject
        self._writers: dict[int, object] = {}   # schema id -> the codec's parsed writer schema

    @classmethod
    def for_topic(cls, settings: Settings, topic: str, codec: Codec | None = None) -> "WireCodec":
        """The registry format for `topic` when SCHEMA_REGISTRY_URL is set, else single-object."""
        registry = SchemaRegistry(settings) if settings.schema_registry_url else None
        return cls(codec, registry, subject_for(topic))

    def schema_id(self, schema: str = DEFAULT_SCHEMA) -> int:
        """The registry id of the current schema `schema` (registered if new); RegistryUnavailable."""
        if self.registry is None or self.subject is None:
            raise ValueError("no Schema Registry configured (SCHEMA_REGISTRY_URL is empty)")
        return self.registry.schema_id(self.subject, self.codec.canonical_form(schema))

    def encode(self, record: dict, schema: str = DEFAULT_SCHEMA) -> bytes:
        single_object = self.codec.encode(record, schema)
        if self.registry is None:
            return single_object
        header = bytes([CONFLUENT_MAGIC]) + self.schema_id(schema).to_bytes(4, "big")
        return header + single_object[HEADER_SIZE:]

    def decode(self, data: bytes, expect: str = DEFAULT_SCHEMA) -> dict:
        if not is_confluent(data):
            if data and data[:1] != MARKER[:1]:
                raise CodecError(
                    f"unknown wire format: expected first bytes c3 01 (Avro single-object) or 00 (Confluent "
                    f"Schema Registry), got {bytes(data[:HEADER_SIZE]).hex(' ')}", reason="bad_marker")
            return self.codec.decode(data, expect)
        return self.codec.decode_body(data, CONFLUENT_HEADER_SIZE, self._writer(confluent_schema_id(data)), expect)

    def needs_fetch(self, data: bytes | None) -> bool:
        """True when decoding `data` would first ask the registry (a blocking HTTP call)."""
        return (is_confluent(data) and len(data) >= CONFLUENT_HEADER_SIZE
                and confluent_schema_id(data) not in self._writers and self.registry is not None)

    def register(self, schema: dict, origin: str = "registered at runtime") -> bytes:
        """A newer single-object writer schema (see Codec.register)."""
        return self.codec.register(schema, origin)

    def _writer(self, schema_id: int):
        if schema_id not in self._writers:
            if self.registry is None:
                raise CodecError(
                    f"message in the Confluent wire format (schema id {schema_id}) but this process has no "
                    "SCHEMA_REGISTRY_URL; set it and re-drive the dead letters", reason="no_schema_registry")
            writer = self.registry.writer_schema(schema_id)
            try:
                self._writers[schema_id] = self.codec.writer_schema(writer, f"schema id {schema_id}")
            except Exception as exc:  # not a parseable Avro record schema
                raise CodecError(f"schema id {schema_id} is not a usable Avro record schema: {exc}",
                                 reason="wrong_schema") from None
        return self._writers[schema_id]
