"""bench/report.py: figures kept from an earlier run (BENCH_KEEP=1) say which run measured them."""
import json

from bench.report import Figure, previous_figures, write_results


def test_a_kept_figure_keeps_the_date_of_the_run_that_measured_it(tmp_path):
    write_results([Figure(1, "throughput", value=10.0, note="measured here")], tmp_path)
    first_date = json.loads((tmp_path / "latest.json").read_text())["date"]
    kept = previous_figures(tmp_path)
    assert kept[1].note == f"(from the run of {first_date}) measured here"

    doc = json.loads((tmp_path / "latest.json").read_text())
    doc["date"] = "2099-01-01 00:00 UTC"   # a later run that kept figure 1 again
    doc["figures"][0]["note"] = kept[1].note
    (tmp_path / "latest.json").write_text(json.dumps(doc))
    again = previous_figures(tmp_path)
    assert again[1].note == f"(from the run of {first_date}) measured here"
    assert again[1].value == 10.0 and again[1].passed is False
