"""Avro single-object encoding of bookloop events (Avro spec, "Single object encoding").

A message is: marker C3 01 | the writer schema's CRC-64-AVRO fingerprint (8 bytes, little
endian) of its Parsing Canonical Form | the Avro binary body. The fingerprint names the writer
schema; `decode` reads the body with it and resolves the result to the current reader schema,
so bytes from older producers (schemas/history/) and registered newer ones still decode.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import to_parsing_canonical_form

from schemas.errors import CodecError

MARKER = b"\xc3\x01"
HEADER_SIZE = len(MARKER) + 8
SCHEMA_DIR = Path(__file__).resolve().parent
DEFAULT_SCHEMA = "bookloop.BookingOutcome"

_RABIN_EMPTY = 0xC15D213AA4D7A795


def _rabin_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        fp = byte
        for _ in range(8):
            fp = (fp >> 1) ^ (_RABIN_EMPTY & -(fp & 1))
        table.append(fp)
    return tuple(table)


_RABIN_TABLE = _rabin_table()


def rabin_fingerprint(data: bytes) -> int:
    """CRC-64-AVRO (Rabin) fingerprint of `data`, as defined in the Avro spec."""
    fp = _RABIN_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _RABIN_TABLE[(fp ^ byte) & 0xFF]
    return fp


def schema_fingerprint(schema: Any) -> bytes:
    """The 8 bytes that name `schema` in a single-object message (little-endian Rabin)."""
    canonical = to_parsing_canonical_form(schema).encode("utf-8")
    return rabin_fingerprint(canonical).to_bytes(8, "little")


@dataclass(frozen=True, eq=False)
class _Schema:
    name: str  # full record name, e.g. bookloop.BookingOutcome
    parsed: dict
    fingerprint: bytes
    origin: str  # file it was loaded from, or who registered it

    def describe(self) -> str:
        return f"{self.name} {self.fingerprint.hex()} ({self.origin})"


def _load(schema: dict, origin: str) -> _Schema:
    # parse_schema gets a fresh name table each time, so two versions of one name don't clash.
    parsed = parse_schema(schema)
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise ValueError(f"{origin}: a bookloop event schema must be a named record")
    return _Schema(parsed["name"], parsed, schema_fingerprint(parsed), origin)


def _read_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class Codec:
    """Encodes and decodes single-object Avro events with the schemas in `schema_dir`.

    Top-level *.avsc files are the current schemas (one per record name): `encode` writes them
    and `decode` resolves to them. history/*.avsc are older writer schemas that still decode.
    """

    def __init__(self, schema_dir: Path | None = None):
        schema_dir = SCHEMA_DIR if schema_dir is None else Path(schema_dir)
        self._current: dict[str, _Schema] = {}
        self._writers: dict[bytes, _Schema] = {}
        for path in sorted(schema_dir.glob("*.avsc")):
            self._add_current(_load(_read_json(path), path.name))
        for path in sorted((schema_dir / "history").glob("*.avsc")):
            self.register(_read_json(path), origin=f"history/{path.name}")

    def _add_current(self, schema: _Schema) -> None:
        if schema.name in self._current:
            other = self._current[schema.name].origin
            raise ValueError(f"two current schemas named {schema.name}: {other} and {schema.origin}")
        self._current[schema.name] = schema
        self._writers[schema.fingerprint] = schema

    def register(self, schema: dict, origin: str = "registered at runtime") -> bytes:
        """Makes `schema` a known writer schema (e.g. a newer producer's); returns its fingerprint."""
        known = _load(schema, origin)
        self._writers.setdefault(known.fingerprint, known)
        return known.fingerprint

    def fingerprint(self, schema: str = DEFAULT_SCHEMA) -> bytes:
        return self._current_schema(schema).fingerprint

    def canonical_form(self, schema: str = DEFAULT_SCHEMA) -> str:
        """The current schema's Parsing Canonical Form: what its fingerprint is taken of."""
        return to_parsing_canonical_form(self._current_schema(schema).parsed)

    def encode(self, record: dict, schema: str = DEFAULT_SCHEMA) -> bytes:
        """`record` as a single-object message written with the current schema named `schema`."""
        return _encode(record, self._current_schema(schema))

    def encode_with(self, record: dict, writer_schema_path_or_dict: str | Path | dict) -> bytes:
        """`record` written with an arbitrary schema (a file path or a dict), e.g. a history one."""
        source = writer_schema_path_or_dict
        if isinstance(source, (str, Path)):
            return _encode(record, _load(_read_json(Path(source)), str(source)))
        return _encode(record, _load(source, "encode_with"))

    def decode(self, data: bytes, expect: str = DEFAULT_SCHEMA) -> dict:
        """The record in `data`, resolved to the current schema named `expect`."""
        return self.decode_body(data, HEADER_SIZE, self._writer_of(data), expect)

    def writer_schema(self, schema: dict, origin: str) -> _Schema:
        """`schema` parsed for `decode_body` (e.g. a writer schema fetched from a schema registry)."""
        return _load(schema, origin)

    def decode_body(self, data: bytes, start: int, writer: _Schema, expect: str = DEFAULT_SCHEMA) -> dict:
        """The Avro body from byte `start` of `data`, written with `writer`, resolved to the current `expect`."""
        reader = self._current_schema(expect)
        if writer.name != reader.name:
            raise CodecError(
                f"message holds a {writer.name} ({writer.origin}), expected a {reader.name}; "
                "it was produced to the wrong topic or decoded with the wrong `expect`",
                reason="wrong_schema")
        same = writer is reader or writer.fingerprint == reader.fingerprint
        return _read_body(data, writer, None if same else reader, start)

    def _writer_of(self, data: bytes) -> _Schema:
        if not data:
            raise CodecError("empty message (no bytes): the producer sent a null or empty value",
                             reason="empty_message")
        if data[:2] != MARKER:
            raise CodecError(
                f"not Avro single-object encoded: expected first bytes c3 01, got "
                f"{bytes(data[:HEADER_SIZE]).hex(' ')}; produce with bookloop's Codec",
                reason="bad_marker")
        if len(data) < HEADER_SIZE:
            raise CodecError(f"message of {len(data)} bytes is shorter than the {HEADER_SIZE}-byte "
                             "header; it was truncated", reason="corrupt_body")
        writer = self._writers.get(bytes(data[2:HEADER_SIZE]))
        if writer is None:
            known = "; ".join(s.describe() for s in self._writers.values())
            raise CodecError(
                f"unknown writer schema fingerprint {bytes(data[2:HEADER_SIZE]).hex()}; known: "
                f"{known}. Add the producer's schema to schemas/history/ or Codec.register it",
                reason="unknown_fingerprint")
        return writer

    def _current_schema(self, name: str) -> _Schema:
        try:
            return self._current[name]
        except KeyError:
            raise ValueError(f"no current schema named {name!r}; known: {sorted(self._current)}") from None


def _encode(record: dict, schema: _Schema) -> bytes:
    buf = BytesIO()
    buf.write(MARKER)
    buf.write(schema.fingerprint)
    try:
        schemaless_writer(buf, schema.parsed, record, strict_allow_default=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"record does not fit {schema.describe()}: {str(exc):.300}; fix the record",
                         reason="not_encodable") from exc
    return buf.getvalue()


def _read_body(data: bytes, writer: _Schema, reader: _Schema | None, start: int = HEADER_SIZE) -> dict:
    """Reads the body from byte `start` with `writer`; `reader` None means the writer is the current schema."""
    buf = BytesIO(data)
    buf.seek(start)
    try:
        record = schemaless_reader(buf, writer.parsed, None if reader is None else reader.parsed)
    except Exception as exc:  # bad bytes make fastavro raise many types (EOFError, ValueError, ...)
        raise CodecError(
            f"body of {len(data)}-byte message does not decode as {writer.describe()}: "
            f"{exc!r}; the message is truncated or corrupt, dead-letter it",
            reason="corrupt_body") from exc
    trailing = len(data) - buf.tell()
    if trailing:
        raise CodecError(
            f"{trailing} trailing bytes after the {writer.name} record; the message is corrupt, "
            "dead-letter it", reason="corrupt_body")
    return record


@functools.cache
def default_codec() -> Codec:
    """The process-wide Codec over the packaged schemas (built once)."""
    return Codec()
