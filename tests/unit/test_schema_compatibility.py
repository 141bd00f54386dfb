"""Every schema change in the repo is BACKWARD compatible, the level bookloop registers subjects
with: data written with an older schema (schemas/history/) reads with the current one (fastavro's
schema resolution, as the worker does), and new fields take their defaults."""
from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.utils import generate_many

from schemas.codec import SCHEMA_DIR
from schemas.registry import COMPATIBILITY

HISTORY = sorted((SCHEMA_DIR / "history").glob("*.avsc"))


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def full_name(schema: dict) -> str:
    return f"{schema['namespace']}.{schema['name']}" if "namespace" in schema else schema["name"]


def current_of(old: dict) -> dict:
    for path in SCHEMA_DIR.glob("*.avsc"):
        if full_name(load(path)) == full_name(old):
            return load(path)
    raise AssertionError(f"history schema {full_name(old)} has no current schema in {SCHEMA_DIR}")


def versions_in_order(old: Path) -> list[dict]:
    """The older schema, every later history version of the same record, then the current one."""
    same = [p for p in HISTORY if p.name.rsplit("_v", 1)[0] == old.name.rsplit("_v", 1)[0]]
    return [load(p) for p in same[same.index(old):]] + [current_of(load(old))]


def test_there_is_history_to_check_and_the_level_is_backward():
    assert HISTORY, "schemas/history/ is empty"
    assert COMPATIBILITY.value == "BACKWARD"


@pytest.mark.parametrize("old", HISTORY, ids=[p.name for p in HISTORY])
def test_each_change_reads_the_previous_versions_data(old):
    chain = versions_in_order(old)
    for writer, reader in zip(chain, chain[1:]):
        assert_backward(writer, reader)
    assert_backward(chain[0], chain[-1])   # and the oldest data with the current schema directly


def assert_backward(writer: dict, reader: dict) -> None:
    parsed_writer, parsed_reader = parse_schema(writer), parse_schema(reader)
    added = [f for f in reader["fields"] if f["name"] not in {w["name"] for w in writer["fields"]}]
    assert all("default" in f for f in added), f"fields added without a default: {[f['name'] for f in added]}"
    for record in generate_many(parsed_writer, 50):
        buf = BytesIO()
        schemaless_writer(buf, parsed_writer, record)
        buf.seek(0)
        read = schemaless_reader(buf, parsed_writer, parsed_reader)
        for field in added:
            assert read[field["name"]] == field["default"]
        for field in reader["fields"]:
            if field["name"] in record and field not in added:
                assert field["name"] in read


def test_an_incompatible_change_is_caught():
    current = current_of(load(HISTORY[0]))
    broken = {**current, "fields": current["fields"] + [{"name": "channel", "type": "string"}]}  # no default
    with pytest.raises(AssertionError, match="without a default"):
        assert_backward(current, broken)
    retyped = {**current, "fields": [{**f, "type": "string"} if f["name"] == "quoted_price" else f
                                     for f in current["fields"]]}
    with pytest.raises(SchemaResolutionError):
        assert_backward(current, retyped)
