"""`make bench`: measure every figure, write bench/results/latest.{md,json}.

A figure that fails or is not implemented is reported as "not measured" with the reason; no
number is ever filled in. BENCH_FIGURES=1,2,7 runs a subset (the others: not measured, or with
BENCH_KEEP=1 the previous latest.json's figures, noted with their run's date).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench import fig_codec, fig_freshness, fig_landing, fig_seed_storage, fig_store
from bench.direct_store import build_store
from bench.records import real_replay, tenfold_outcomes
from bench.report import Figure, not_measured, previous_figures, write_results
from producers.embedded_broker import EmbeddedBroker

NAMES = {1: ("landing throughput, 1 worker vs Faust floor", "≥ 0.8× floor"),
         2: ("landing vs the seed's storage (wall time)", "≥ 4× faster, bytes written ≤ 1.5× dataset"),
         3: ("freshness p99 at 1,000 ev/s", "p99 ≤ flush interval + 2 s"),
         4: ("worker peak RSS, 10x vs 1x replay", "≤ 1.3×"),
         5: ("retrain all properties, 10x vs 1x", "10x ≤ 60 s"),
         6: ("get_statistics median of 20, after vs before compaction", "≤ 200 ms after"),
         7: ("codec encode+decode vs plain fastavro", "≥ 0.9× fastavro (header costs < 10 %)")}
NOT_IMPLEMENTED: dict[int, str] = {}   # figure id -> why it is not measured yet


def _selected() -> set[int]:
    raw = os.environ.get("BENCH_FIGURES", "")
    return {int(x) for x in raw.split(",") if x.strip()} or set(NAMES)


class Bench:
    def __init__(self, work: Path):
        self.work = work
        self.figures: dict[int, Figure] = {}
        self.wanted = _selected()

    def attempt(self, id_: int, fn) -> object | None:
        """Run one measurement; on failure record the figure as not measured, with the reason."""
        if id_ not in self.wanted:
            return None
        started = time.monotonic()
        print(f"bench: figure {id_} ({NAMES[id_][0]}) ...", flush=True)
        try:
            result = fn()
        except Exception as exc:
            traceback.print_exc()
            self.figures[id_] = not_measured(id_, *NAMES[id_], f"failed: {type(exc).__name__}: {exc}"[:300])
            return None
        figure = result[0] if isinstance(result, tuple) else result
        self.figures[id_] = figure
        print(f"bench: figure {id_}: {figure.value} {figure.unit} vs {figure.baseline} "
              f"(ratio {figure.ratio}) in {time.monotonic() - started:.0f} s", flush=True)
        return result

    def run(self) -> None:
        if os.environ.get("BENCH_KEEP") == "1":
            self.figures.update({i: f for i, f in previous_figures().items() if i not in self.wanted})
        self.attempt(7, fig_codec.measure)
        self.attempt(2, lambda: fig_seed_storage.measure(self.work))
        if self.wanted & {1, 3, 4}:
            with EmbeddedBroker() as broker:
                self.attempt(3, lambda: fig_freshness.measure(broker.bootstrap, self.work))
                if self.wanted & {1, 4}:
                    self._landing(broker.bootstrap)
        if self.wanted & {5, 6} and not self.wanted & {1, 4}:
            # no worker run: land the same data straight through the sink
            print("bench: building the 1x and 10x stores with the landing sink (no Kafka) ...", flush=True)
            build_store(real_replay(), self.work / "x1")
            build_store(tenfold_outcomes(), self.work / "x10")
            self._stores()
        for id_, (name, target) in NAMES.items():
            if id_ not in self.figures:
                reason = NOT_IMPLEMENTED.get(id_) or ("not selected (BENCH_FIGURES)" if id_ not in self.wanted
                                                      else "its prerequisite figure failed")
                self.figures[id_] = not_measured(id_, name, target, reason)

    def _stores(self) -> None:
        self.attempt(6, lambda: fig_store.measure_stats(self.work / "x10"))
        self.attempt(5, lambda: fig_store.measure_retrain(self.work / "x1", self.work / "x10"))

    def _landing(self, bootstrap: str) -> None:
        one_x = self.attempt(1, lambda: fig_landing.measure_throughput(bootstrap, self.work))
        if one_x is None and 4 in self.wanted:   # figure 4 needs the 1x worker's peak
            self.figures[4] = not_measured(4, *NAMES[4], "the 1x worker run (figure 1) failed or was skipped")
            return
        if one_x is not None:
            ten_x = self.attempt(4, lambda: fig_landing.measure_memory(bootstrap, self.work, one_x[1]))
            if ten_x is not None:   # the stores both runs left behind
                self._stores()


def main() -> int:
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bookloop-bench-"))
    bench = Bench(work)
    try:
        bench.run()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        md, js = write_results(list(bench.figures.values()))
        print(md.read_text(encoding="utf-8"))
        print(f"bench: wrote {md} and {js} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
