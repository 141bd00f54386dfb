"""Benchmark figures and their two result files: bench/results/latest.md and latest.json."""
from __future__ import annotations

import json
import os
import re
import platform
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Figure:
    id: int
    name: str
    value: float | None = None
    unit: str = ""
    baseline: float | None = None
    ratio: float | None = None
    target: str = ""
    passed: bool = False
    note: str = ""                                    # how it was measured, or why it was not
    details: list[dict] = field(default_factory=list)  # secondary rows: name, value, unit, ...

    def as_json(self) -> dict:
        data = asdict(self)
        data["pass"] = data.pop("passed")
        return data


def not_measured(id_: int, name: str, target: str, reason: str) -> Figure:
    return Figure(id_, name, target=target, passed=False, note=f"not measured: {reason}")


_KEPT = re.compile(r"\(from the run of [^)]*\) ")


def previous_figures(results_dir: Path = RESULTS_DIR) -> dict[int, Figure]:
    """The figures of the last written latest.json, each noted with its run's date."""
    path = results_dir / "latest.json"
    if not path.exists():
        return {}
    doc = json.loads(path.read_text(encoding="utf-8"))
    figures = {}
    for item in doc["figures"]:
        item = dict(item)
        item["passed"] = item.pop("pass")
        note = item.get("note", "")
        if not _KEPT.match(note):   # a figure kept again keeps the date of the run that measured it
            note = f"(from the run of {doc['date']}) {note}"
        item["note"] = note
        figures[item["id"]] = Figure(**item)
    return figures


def machine_description() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{mem_kb / 2**20:.0f} GiB RAM"
    except OSError:
        memory = "unknown RAM"
    return (f"{os.cpu_count()} cores ({cpu}), {memory}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}; shared and noisy")


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"


def _row(label: str, item: dict) -> str:
    value = "not measured" if item.get("value") is None else f"{_num(item['value'])} {item.get('unit', '')}".strip()
    baseline = _num(item.get("baseline"))
    ratio = "—" if item.get("ratio") is None else f"{item['ratio']:.2f}×"
    verdict = item.get("pass")
    verdict = "" if verdict is None else ("pass" if verdict else "FAIL")
    return f"| {label} | {value} | {baseline} | {ratio} | {item.get('target', '')} | {verdict} |"


def markdown(figures: list[Figure], machine: str, date: str) -> str:
    lines = [f"Benchmarks of {date} on {machine}.", "",
             "| figure | value | baseline | ratio | target | pass/fail |", "|---|---|---|---|---|---|"]
    for fig in figures:
        lines.append(_row(f"{fig.id}. {fig.name}", fig.as_json()))
        for detail in fig.details:
            lines.append(_row(f"&nbsp;&nbsp;{fig.id}. {detail['name']}", detail))
    lines.append("")
    for fig in figures:
        if fig.note:
            lines.append(f"- {fig.id}. {fig.note}")
    return "\n".join(lines) + "\n"


def write_results(figures: list[Figure], results_dir: Path = RESULTS_DIR) -> tuple[Path, Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_description()
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    figures = sorted(figures, key=lambda f: f.id)
    md_path, json_path = results_dir / "latest.md", results_dir / "latest.json"
    md_path.write_text(markdown(figures, machine, date), encoding="utf-8")
    doc = {"machine": machine, "date": date, "figures": [f.as_json() for f in figures]}
    json_path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return md_path, json_path
