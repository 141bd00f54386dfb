"""Where landed events live: hive-style folders with property ids that cannot escape them.

Layout: <data_dir>/outcomes/property_id=<encoded id>/date=<YYYY-MM-DD>/<part file>.parquet

Property ids are percent-encoded like Spark does (and pyarrow's `segment_encoding="uri"` decodes):
every ASCII character outside [A-Za-z0-9-_.~] and every control character becomes %XX of its
UTF-8 bytes, so `/`, `..`, NUL or `=` can never form a path; printable non-ASCII letters stay as
they are. Ids are length-checked by validation before they get here.

Part files are named after what they contain, so the name says where every row came from:
    <topic>+<partition>+<first offset>+<last offset>+<topic epoch>.parquet
The epoch is the Kafka topic id, so a re-created topic (offsets back at 0) never collides with
files landed from its previous incarnation.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import unquote

OUTCOMES = "outcomes"
_EPOCH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
_SAFE_ASCII = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_~")


def encode_segment(value: str) -> str:
    out = []
    for ch in value:
        if ch in _SAFE_ASCII or (ord(ch) > 127 and not unicodedata.category(ch).startswith("C")):
            out.append(ch)
        else:
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8")))
    return "".join(out)


def decode_segment(segment: str) -> str:
    return unquote(segment, errors="strict")


def outcomes_root(data_dir: str | Path) -> Path:
    return Path(data_dir) / OUTCOMES


def partition_dir(data_dir: str | Path, property_id: str, day: date) -> Path:
    return outcomes_root(data_dir) / f"property_id={encode_segment(property_id)}" / f"date={day.isoformat()}"


@dataclass(frozen=True)
class PartName:
    topic: str
    partition: int
    first_offset: int
    last_offset: int
    epoch: str

    def filename(self) -> str:
        if not set(self.epoch) <= _EPOCH_CHARS:
            raise ValueError(f"topic epoch {self.epoch!r} is not URL-safe base64")
        return (f"{self.topic}+{self.partition:04d}+{self.first_offset:020d}"
                f"+{self.last_offset:020d}+{self.epoch}.parquet")

    @classmethod
    def parse(cls, filename: str) -> "PartName | None":
        if not filename.endswith(".parquet") or filename.startswith((".", "_")):
            return None
        pieces = filename[: -len(".parquet")].split("+")
        if len(pieces) != 5:
            return None
        topic, partition, first, last, epoch = pieces
        try:
            return cls(topic, int(partition), int(first), int(last), epoch)
        except ValueError:
            return None


def temp_name(final: Path) -> Path:
    """Hidden sibling: pyarrow/Spark skip dot-files and it does not end in .parquet."""
    return final.with_name(f".{final.name}.tmp")


def _temp_target(name: str) -> str:
    """The final name a temp file was written for, or "" if `name` is not a temp file."""
    return name[1:-len(".tmp")] if name.startswith(".") and name.endswith(".parquet.tmp") else ""


def iter_part_files(data_dir: str | Path, temp: bool = False):
    """Yield (property_id, date string, path, PartName) for every landed part file — or, with
    `temp`, for every temp file a crashed flush left behind."""
    root = outcomes_root(data_dir)
    if not root.is_dir():
        return
    for prop_dir in _entries(root):
        if not prop_dir.name.startswith("property_id="):
            continue
        property_id = decode_segment(prop_dir.name[len("property_id="):])
        for day_dir in _entries(prop_dir):
            if not day_dir.name.startswith("date="):
                continue
            for entry in _entries(day_dir):
                part = PartName.parse(_temp_target(entry.name) if temp else entry.name)
                if part is not None:
                    yield property_id, day_dir.name[len("date="):], entry, part


def _entries(folder: Path) -> list[Path]:
    """A folder's entries; none if it vanished meanwhile (retention or compaction moved it)."""
    try:
        return list(folder.iterdir())
    except FileNotFoundError:
        return []
