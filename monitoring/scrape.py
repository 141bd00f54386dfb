"""Read a /metrics page back into numbers (used by the demo, tests and benchmarks)."""
from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def scrape(url: str, timeout: float = 5.0) -> dict[str, float]:
    """Sample name -> value, summed over label sets (e.g. dead letters of every reason)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read().decode("utf-8")
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def scrape_labelled(url: str, name: str, label: str, timeout: float = 5.0) -> dict[str, float]:
    """Values of one metric by one label, e.g. dead letters by reason."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read().decode("utf-8")
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[sample.labels.get(label, "")] = sample.value
    return out
