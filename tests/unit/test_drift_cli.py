"""`bookloop drift` over a landed store: numbers equal scipy / longhand PSI on rows read
independently (DuckDB), the seed's report and exit codes, --all-properties, JSON and HTML."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import duckdb
import pytest
from click.testing import CliRunner
from scipy.stats import ks_2samp

from batch.cli import cli
from drift_helpers import Lander, day_range, reference_psi
from schemas.settings import Settings


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """city: 41 days, prices x 1.3 in its last 7; resort: 41 unchanged days."""
    data_dir = tmp_path_factory.mktemp("drift-store")
    lander = Lander(Settings.from_env({}, data_dir=str(data_dir)), seed=3)
    lander.land("city", 0, day_range(0, 33), per_day=80)
    lander.land("city", 0, day_range(34, 40), per_day=80, price_factor=1.3)
    lander.land("resort", 1, day_range(0, 40), per_day=60)
    return data_dir


def run(store, *args):
    return CliRunner().invoke(cli, ["drift", "--data-dir", str(store), *args])


def independent_samples(store, prop, report, column):
    sql = (f"select date::varchar as day, {column} as v from read_parquet('{store}/outcomes/property_id={prop}/*/*.parquet',"
           f" hive_partitioning=true) where v is not null and date between '{report['reference']['first_day']}'"
           f" and '{report['current']['last_day']}'")
    rows = duckdb.sql(sql).fetchall()
    current = [v for day, v in rows if day >= report["current"]["first_day"]]
    return [v for day, v in rows if day < report["current"]["first_day"]], current


def test_json_numbers_equal_scipy_and_longhand_psi_on_the_same_rows(store):
    result = run(store, "--property-id", "city", "--reference-days", "30", "--current-days", "7",
                 "--as-of", "2016-07-11", "--json")
    assert result.exit_code == 1, result.output  # drift: retrain recommended
    report = json.loads(result.stdout)
    assert report["current"] == {"first_day": "2016-07-05", "last_day": "2016-07-11", "days": 7, "rows": 560}
    assert report["reference"]["rows"] == 30 * 80 and report["retrain_recommended"]
    columns = {"quoted_price": "quoted_price", "lead_time": "lead_time", "accepted": "accepted::double",
               "features.adults": "json_extract(features, '$.adults')::double"}
    features = {f["feature"]: f for f in report["features"]}
    for name, column in columns.items():
        reference, current = independent_samples(store, "city", report, column)
        expected = ks_2samp(reference, current)
        assert features[name]["ks_statistic"] == pytest.approx(expected.statistic, abs=1e-9)
        assert features[name]["ks_p_value"] == pytest.approx(expected.pvalue, abs=1e-9)
        assert features[name]["psi"] == pytest.approx(reference_psi(reference, current), abs=1e-9)
    assert features["quoted_price"]["drifted"] and "quoted_price" in report["drifted_features"]
    assert "comp_p50" not in features  # never present: not a candidate


def test_text_report_follows_the_seed(store):
    result = run(store, "--property-id", "resort", "--features", "quoted_price", "lead_time", "adults")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith("=" * 80 + "\nDRIFT DETECTION RESULTS\n" + "=" * 80 + "\n\nProperty: resort\n")
    assert "Reference period: 30 days (1800 samples)\nCurrent period: 7 days (420 samples)" in text
    assert "Drifted features: 0/3 (0.0%)\nTrigger retrain: False" in text
    assert re.search(r"✅ features\.adults:\n {6}KS p-value: \d\.\d{4} \(drifted: False\)\n {6}PSI: \d\.\d{4}", text)


def test_all_properties_and_html(store, tmp_path):
    html = tmp_path / "report.html"
    result = run(store, "--all-properties", "--json", "--html", str(html))
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert [p["property_id"] for p in report["properties"]] == ["city", "resort"]
    assert report["retrain_recommended"] == ["city"]
    page = html.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "<script" not in page and "http" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")  # self-contained
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    plotted = sum(len(p["features"]) for p in report["properties"])
    assert len(svgs) == 2 * plotted  # histograms side by side + ECDFs, per feature
    for svg in svgs:
        assert ET.fromstring(svg).tag == "{http://www.w3.org/2000/svg}svg"
    assert page.count("<rect") > 30 * 2 * plotted and "<polyline" in page


@pytest.mark.parametrize("args, message", [
    (["--property-id", "nope"], "unknown property 'nope'"),
    (["--property-id", "city", "--as-of", "2010-01-01"], "no data for 'city'"),
    (["--property-id", "city", "--features", "quoted_price", "bogus"], "unknown feature 'bogus'"),
    (["--property-id", "city", "--reference-days", "0"], "0 is not in the range"),
    (["--property-id", "city", "--current-days", "100000000"], "100000000 is not in the range 1<=x<=36500"),
    (["--property-id", "city", "--as-of", "9999-12-31"], "'9999-12-31' must lie between 1970-01-02 and 9999-01-01"),
    (["--property-id", "city", "--as-of", "0001-01-01"], "'0001-01-01' must lie between 1970-01-02 and 9999-01-01"),
    (["--all-properties", "--property-id", "city"], "either --property-id P or --all-properties"),
    (["city"], "either --property-id P or --all-properties"),
])
def test_errors_exit_2_with_a_message(store, args, message):
    result = run(store, *args)
    assert result.exit_code == 2 and message in result.output, result.output


def test_window_days_from_the_environment_are_bounded_too(store, monkeypatch):
    monkeypatch.setenv("BOOKLOOP_DRIFT_REFERENCE_DAYS", "100000000")
    result = run(store, "--property-id", "city")
    assert result.exit_code == 2
    assert "Error: BOOKLOOP_DRIFT_REFERENCE_DAYS (drift_reference_days) must be at most 36500 (100 years), got 100000000" in result.output


def test_an_empty_store_is_an_error(tmp_path):
    result = run(tmp_path, "--all-properties")
    assert result.exit_code == 2 and "no properties in the store" in result.output
