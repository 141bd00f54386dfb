"""The dashboard documents: overview over the store, model performance from the registry layout."""
import json
from datetime import date

from store_helpers import land, row

from consumers.dashboard import model_performance, overview
from consumers.storage import OutcomesStorage


def register(data_dir, prop_folder, model_type, version, auc, features, deployed=False):
    folder = data_dir / "models" / prop_folder / model_type
    (folder / version).mkdir(parents=True)
    meta = {"metrics": {"auc": auc, "logloss": 0.4}, "feature_spec": {"features": [{"name": f} for f in features]}}
    (folder / version / "metadata.json").write_text(json.dumps(meta))
    if deployed:
        (folder / "deployed.json").write_text(json.dumps({"version": version}))


def test_no_registry_means_empty_performance(tmp_path):
    assert model_performance(tmp_path) == {
        "success": True, "performance_by_property": {},
        "summary": {"total_properties": 0, "avg_auc": None, "avg_num_features": None, "models_count": 0}}


def test_performance_lists_versions_newest_first_and_summarises_the_newest(tmp_path):
    register(tmp_path, "city", "conversion", "v20241001_120000", 0.80, ["a"])
    register(tmp_path, "city", "conversion", "v20241008_120000", 0.90, ["a", "b"], deployed=True)
    register(tmp_path, "h%C3%B4tel%201", "conversion", "v20241008_130000", 0.70, ["a", "b", "c", "d"])
    (tmp_path / "models" / "city" / "conversion" / ".v20241009_000000.tmp").mkdir()  # being written
    doc = model_performance(tmp_path)
    city = doc["performance_by_property"]["city"]["conversion"]
    assert [v["version"] for v in city] == ["v20241008_120000", "v20241001_120000"]
    assert city[0] == {"version": "v20241008_120000", "timestamp": "20241008_120000",
                       "metrics": {"auc": 0.9, "logloss": 0.4}, "num_features": 2}
    assert "hôtel 1" in doc["performance_by_property"]
    assert doc["summary"] == {"total_properties": 2, "avg_auc": 0.8, "avg_num_features": 3.0, "models_count": 2}


def test_overview_totals_the_properties(tmp_path):
    land(tmp_path, "city", 0, [row("a", 0, True, 100.0), row("b", 0, False, 300.0)])
    land(tmp_path, "resort", 3, [row("r", 3, True, 50.0)])
    register(tmp_path, "city", "conversion", "v20241001_120000", 0.8, ["a"], deployed=True)
    register(tmp_path, "city", "adr", "v20241001_120000", 0.8, ["a"])
    doc = overview(OutcomesStorage(tmp_path), as_of=date(2017, 8, 2))
    assert doc["overview"] == {"total_properties": 2, "total_outcomes": 3, "recent_outcomes_7d": 2,
                               "avg_acceptance_rate": 0.75, "total_models": 2, "cached_models": 1}
    assert doc["properties"][0] == {"property_id": "city", "total_outcomes": 2, "recent_outcomes_7d": 2,
                                    "acceptance_rate": 0.5, "avg_price": 200.0}
    assert doc["timestamp"].endswith("Z")
