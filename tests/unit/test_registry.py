import hashlib
import json
from datetime import datetime, timedelta, timezone

import lightgbm as lgb
import numpy as np
import pytest

from batch.registry import Registry, RegistryError, event_record
from consumers.model_artifacts import ModelArtifactError
from consumers.model_features import Feature, FeatureSpec
from schemas.codec import default_codec

T0 = datetime(2026, 1, 5, 2, 0, tzinfo=timezone.utc)


def tiny_model_text() -> str:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 1))
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 4},
                        lgb.Dataset(x, (x[:, 0] > 0).astype(float)), num_boost_round=3)
    return booster.model_to_string()


def save(registry, created, prop="city/ä", model_type="conversion", previous=None):
    meta = {"trigger": "schedule", "previous_version": previous, "metrics": {"auc": 0.9},
            "feature_spec": FeatureSpec((Feature("signal"),)).to_dict(), "rows": {"train": 1, "validation": 1},
            "training_window": {"start": created.isoformat(), "end": created.isoformat()}}
    return registry.save(prop, model_type, tiny_model_text(), meta, created)


def test_save_writes_model_and_metadata_with_sha(tmp_path):
    registry = Registry(tmp_path)
    meta = save(registry, T0)
    folder = tmp_path / "models" / "city%2Fä" / "conversion" / "v20260105_020000"
    assert meta["version"] == "v20260105_020000"
    data = (folder / "model.txt").read_bytes()
    assert meta["artifact_sha256"] == hashlib.sha256(data).hexdigest()
    assert json.loads((folder / "metadata.json").read_text())["artifact_uri"] == (folder / "model.txt").as_uri()
    assert registry.pairs() == [("city/ä", "conversion")]
    assert registry.deployed_version("city/ä", "conversion") is None


def test_same_second_gets_the_next_free_version(tmp_path):
    registry = Registry(tmp_path)
    assert save(registry, T0)["version"] == "v20260105_020000"
    assert save(registry, T0)["version"] == "v20260105_020001"


def test_deploy_pointer_and_prune_keeps_three_and_the_deployed(tmp_path):
    registry = Registry(tmp_path)
    versions = [save(registry, T0 + timedelta(hours=h))["version"] for h in range(5)]
    registry.deploy("city/ä", "conversion", versions[0])
    assert registry.prune("city/ä", "conversion") == [versions[1]]
    assert registry.versions("city/ä", "conversion") == [versions[0]] + versions[2:]
    assert registry.deployed_version("city/ä", "conversion") == versions[0]
    assert not list(registry.folder("city/ä", "conversion").glob(".*"))  # no temp files left
    with pytest.raises(RegistryError, match="no version 'v20990101_000000'"):
        registry.deploy("city/ä", "conversion", "v20990101_000000")


def test_load_refuses_a_changed_model_file(tmp_path):
    registry = Registry(tmp_path)
    meta = save(registry, T0)
    assert registry.load("city/ä", "conversion", meta["version"]).spec.names == ["signal"]
    path = registry.folder("city/ä", "conversion") / meta["version"] / "model.txt"
    path.write_text(path.read_text() + "\n")
    with pytest.raises(ModelArtifactError, match="has sha256"):
        registry.load("city/ä", "conversion", meta["version"])


def test_rollback_target_is_the_previously_live_version(tmp_path):
    registry = Registry(tmp_path)
    first = save(registry, T0)["version"]
    save(registry, T0 + timedelta(hours=1), previous=first)  # trained but never deployed
    third = save(registry, T0 + timedelta(hours=2), previous=first)["version"]
    registry.deploy("city/ä", "conversion", third)
    assert registry.rollback_target("city/ä", "conversion", None) == first
    registry.deploy("city/ä", "conversion", first)
    with pytest.raises(RegistryError, match="records no earlier live version"):
        registry.rollback_target("city/ä", "conversion", None)


def test_event_record_fits_the_schema(tmp_path):
    meta = save(Registry(tmp_path), T0)
    record = event_record(meta, deployed=True, trigger="rollback", previous_version="v1")
    decoded = default_codec().decode(default_codec().encode(record, "bookloop.ModelUpdated"),
                                     expect="bookloop.ModelUpdated")
    assert decoded["trigger"] == "rollback" and decoded["previous_version"] == "v1"
    assert decoded["artifact_sha256"] == meta["artifact_sha256"] and decoded["created_at"] == T0
