"""Bytes a process passed to write(2), from /proc/<pid>/io (`wchar`: counts page-cache writes too)."""
from __future__ import annotations

from pathlib import Path


def written_bytes(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/io has no wchar line")


def tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.parquet") if p.is_file())
