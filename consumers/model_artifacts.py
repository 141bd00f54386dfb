"""Loading a registered model: check the file's sha256, then build the Booster from those bytes.

A version folder holds the LightGBM model file and metadata.json (written by batch/registry.py);
the metadata carries the FeatureSpec the model was trained with. Shared by the ModelFollower and
by the retrain job (which scores the deployed model on the new validation rows).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import lightgbm as lgb
import numpy as np
import pandas as pd

from consumers.model_features import FeatureSpec, flatten_rows
from schemas.errors import BookloopError

METADATA_FILE = "metadata.json"


class ModelArtifactError(BookloopError):
    """A model file is missing, unreadable, or does not match its recorded sha256."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def artifact_path(uri: str) -> Path:
    """Local path of a `file://` URI or a plain path (other storage schemes are not supported yet)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "":
        return Path(uri)
    raise ModelArtifactError(f"artifact URI {uri!r}: scheme {parsed.scheme!r} is not supported; "
                             "only local files (file://...) are")


@dataclass(frozen=True)
class LoadedModel:
    """A verified, fully built model; immutable, so readers can share it across threads."""

    property_id: str
    model_type: str
    version: str
    booster: lgb.Booster = field(repr=False)
    spec: FeatureSpec = field(repr=False)
    metadata: dict = field(repr=False)

    def predict(self, rows: pd.DataFrame | list[dict]) -> np.ndarray:
        """Conversion probability, or the predicted amount for adr/revpar, one per row."""
        return self.booster.predict(self.spec.matrix(flatten_rows(rows)))


def load_model(uri: str, expected_sha256: str, expected_version: str | None = None) -> LoadedModel:
    """Read the model file once, check its sha256, and build the Booster from the same bytes."""
    path = artifact_path(uri)
    try:
        data = path.read_bytes()
        metadata = json.loads((path.parent / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelArtifactError(f"cannot read model {path} or its {METADATA_FILE}: {exc}") from exc
    actual = sha256_hex(data)
    if actual != expected_sha256:
        raise ModelArtifactError(f"model file {path} has sha256 {actual}, expected {expected_sha256}: "
                                 "it was changed or corrupted after registration; not loading it")
    if expected_version is not None and metadata.get("version") != expected_version:
        raise ModelArtifactError(f"{path.parent / METADATA_FILE} describes version "
                                 f"{metadata.get('version')!r}, expected {expected_version!r}")
    try:
        booster = lgb.Booster(model_str=data.decode("utf-8"))
    except (UnicodeDecodeError, lgb.basic.LightGBMError) as exc:
        raise ModelArtifactError(f"{path} is not a LightGBM model file: {exc}") from exc
    return LoadedModel(metadata["property_id"], metadata["model_type"], metadata["version"],
                       booster, FeatureSpec.from_dict(metadata["feature_spec"]), metadata)
