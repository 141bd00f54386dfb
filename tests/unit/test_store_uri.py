"""BOOKLOOP_STORE_URI: batch reads (retrain's listing and loading, `bookloop stats`) through a
pyarrow.fs URI give what the local path gives; tested with file://, the way s3:// or gs:// work."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from batch.cli import cli
from batch.training import list_properties, load_outcomes
from consumers.store_location import scan_store, store_filesystem
from schemas.errors import BookloopError, ConfigError

CUTOFF = datetime(2017, 9, 1, tzinfo=timezone.utc)


def test_store_uris_list_and_load_like_paths(tmp_path, outcome_store):
    rows = outcome_store(tmp_path, "city", n=300, seed=3)
    uri = (tmp_path / "outcomes").as_uri()
    assert list_properties("unused", uri) == list_properties(tmp_path) == ["city"]
    by_uri, by_path = load_outcomes("unused", "city", CUTOFF, uri), load_outcomes(tmp_path, "city", CUTOFF)
    assert len(by_uri) == len(rows) and by_uri.equals(by_path)
    with pytest.raises(BookloopError, match="no outcome store at file://"):
        list_properties("unused", (tmp_path / "missing").as_uri())


def test_stats_read_a_store_uri_like_the_local_store(tmp_path, outcome_store, monkeypatch):
    outcome_store(tmp_path / "landed", "city", n=400, seed=4)
    local = CliRunner().invoke(cli, ["stats", "--property-id", "city", "--as-of", "2017-08-31", "--json",
                                     "--data-dir", str(tmp_path / "landed")])
    monkeypatch.setenv("BOOKLOOP_STORE_URI", (tmp_path / "landed" / "outcomes").as_uri())
    remote = CliRunner().invoke(cli, ["stats", "--property-id", "city", "--as-of", "2017-08-31", "--json",
                                      "--data-dir", str(tmp_path / "elsewhere")])
    assert local.exit_code == remote.exit_code == 0, remote.output
    assert json.loads(remote.output) == json.loads(local.output)
    assert json.loads(remote.output)["stats"]["total_records"] == 400
    assert scan_store((tmp_path / "landed" / "outcomes").as_uri(), "resort", None) is None


def test_an_unknown_scheme_is_a_clear_error():
    with pytest.raises(ConfigError, match="BOOKLOOP_STORE_URI='nosuch://bucket/outcomes'"):
        store_filesystem("", "nosuch://bucket/outcomes")
