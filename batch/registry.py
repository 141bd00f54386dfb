"""The versioned model registry under the data dir.

    <data_dir>/models/<property>/<model_type>/<version>/model.txt       LightGBM model file
                                             <version>/metadata.json    metrics, features and categories,
                                                                        training window, rows, sha256, ...
                                 <model_type>/deployed.json             {"version": ...}: the live one

Versions are `vYYYYMMDD_HHMMSS` (UTC creation time), so their names sort by age. A version is
written in a hidden temp folder, fsynced and renamed into place; deployed.json is replaced
atomically (temp file, fsync, rename, fsync folder). The last KEEP_VERSIONS versions stay on disk,
and the deployed one is never pruned. Property folders are percent-encoded like the outcome store's.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

from consumers.model_artifacts import METADATA_FILE, LoadedModel, load_model, sha256_hex
from consumers.paths import decode_segment, encode_segment
from schemas.errors import BookloopError

MODELS = "models"
MODEL_FILE = "model.txt"
POINTER_FILE = "deployed.json"
KEEP_VERSIONS = 3
VERSION_FORMAT = "v%Y%m%d_%H%M%S"
_VERSION = re.compile(r"^v\d{8}_\d{6}$")


class RegistryError(BookloopError):
    """A model version or pointer is missing or inconsistent."""


class Registry:
    def __init__(self, data_dir: str | Path):
        self.root = Path(data_dir) / MODELS

    def folder(self, property_id: str, model_type: str) -> Path:
        return self.root / encode_segment(property_id) / model_type

    def pairs(self, property_id: str | None = None) -> list[tuple[str, str]]:
        """(property, model_type) pairs that have a folder, sorted."""
        if not self.root.is_dir():
            return []
        found = [(decode_segment(p.name), t.name) for p in self.root.iterdir() if p.is_dir()
                 for t in p.iterdir() if t.is_dir()]
        return sorted(pair for pair in found if property_id is None or pair[0] == property_id)

    def versions(self, property_id: str, model_type: str) -> list[str]:
        folder = self.folder(property_id, model_type)
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if _VERSION.match(p.name))

    def metadata(self, property_id: str, model_type: str, version: str) -> dict:
        path = self.folder(property_id, model_type) / version / METADATA_FILE
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            known = ", ".join(self.versions(property_id, model_type)) or "none"
            raise RegistryError(f"no version {version!r} of the {model_type} model for {property_id!r} "
                                f"(known: {known})") from None

    def latest(self, property_id: str, model_type: str) -> dict | None:
        versions = self.versions(property_id, model_type)
        return self.metadata(property_id, model_type, versions[-1]) if versions else None

    def deployed_version(self, property_id: str, model_type: str) -> str | None:
        path = self.folder(property_id, model_type) / POINTER_FILE
        try:
            return json.loads(path.read_text(encoding="utf-8"))["version"]
        except FileNotFoundError:
            return None

    def deployed(self, property_id: str, model_type: str) -> dict | None:
        version = self.deployed_version(property_id, model_type)
        return None if version is None else self.metadata(property_id, model_type, version)

    def load(self, property_id: str, model_type: str, version: str) -> LoadedModel:
        """The version's Booster and FeatureSpec, after checking the file's sha256."""
        meta = self.metadata(property_id, model_type, version)
        return load_model(meta["artifact_uri"], meta["artifact_sha256"], version)

    def save(self, property_id: str, model_type: str, model_text: str, metadata: dict,
             created: datetime) -> dict:
        """Write a new version durably; returns its full metadata (version, artifact uri, sha256)."""
        folder = self.folder(property_id, model_type)
        folder.mkdir(parents=True, exist_ok=True)
        version = self._free_version(folder, created)
        final = folder / version
        data = model_text.encode("utf-8")
        meta = {**metadata, "version": version, "property_id": property_id, "model_type": model_type,
                "created_at": created.isoformat(), "artifact_file": MODEL_FILE,
                "artifact_uri": (final / MODEL_FILE).resolve().as_uri(), "artifact_sha256": sha256_hex(data)}
        temp = folder / f".{version}.tmp"
        temp.mkdir()
        _write_synced(temp / MODEL_FILE, data)
        _write_synced(temp / METADATA_FILE, json.dumps(meta, indent=2, sort_keys=True).encode("utf-8"))
        _fsync_dir(temp)
        os.rename(temp, final)
        _fsync_dir(folder)
        return meta

    def deploy(self, property_id: str, model_type: str, version: str) -> None:
        """Point deployed.json at `version` (atomically replaced)."""
        self.metadata(property_id, model_type, version)  # raises if the version does not exist
        pointer = {"version": version, "deployed_at": datetime.now(timezone.utc).isoformat()}
        _replace_durably(self.folder(property_id, model_type) / POINTER_FILE,
                         json.dumps(pointer, sort_keys=True).encode("utf-8"))

    def prune(self, property_id: str, model_type: str, keep: int = KEEP_VERSIONS) -> list[str]:
        """Delete all but the newest `keep` versions, never the deployed one; returns the deleted."""
        deployed = self.deployed_version(property_id, model_type)
        doomed = [v for v in self.versions(property_id, model_type)[:-keep] if v != deployed]
        for version in doomed:
            shutil.rmtree(self.folder(property_id, model_type) / version)
        return doomed

    def rollback_target(self, property_id: str, model_type: str, to: str | None) -> str:
        """`to`, or the version that was live before the deployed one."""
        deployed = self.deployed(property_id, model_type)
        if deployed is None:
            raise RegistryError(f"no deployed {model_type} model for {property_id!r}: nothing to roll back")
        target = to or deployed.get("previous_version")
        if target is None:
            raise RegistryError(f"{deployed['version']} of {property_id}/{model_type} records no earlier "
                                "live version; name one with --to (see `bookloop models list`)")
        if target not in self.versions(property_id, model_type):
            raise RegistryError(f"version {target} of {property_id}/{model_type} is not on disk (pruned?); "
                                f"known: {', '.join(self.versions(property_id, model_type))}")
        return target

    @staticmethod
    def _free_version(folder: Path, created: datetime) -> str:
        """The version named after `created`, one second later while that name is taken."""
        stamp = created.astimezone(timezone.utc)
        while True:
            version = stamp.strftime(VERSION_FORMAT)
            if not (folder / version).exists() and not (folder / f".{version}.tmp").exists():
                return version
            stamp += timedelta(seconds=1)


def event_record(meta: dict, deployed: bool, **overrides) -> dict:
    """The ModelUpdated record announcing version `meta`; a rollback overrides trigger and previous_version."""
    record = {
        "version": meta["version"], "property_id": meta["property_id"], "model_type": meta["model_type"],
        "metrics": {k: float(v) for k, v in meta["metrics"].items()},
        "artifact_uri": meta["artifact_uri"], "artifact_sha256": meta["artifact_sha256"],
        "previous_version": meta.get("previous_version"), "deployed": deployed, "trigger": meta["trigger"],
        "created_at": datetime.fromisoformat(meta["created_at"]),
    }
    record.update(overrides)
    return record


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _replace_durably(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    _write_synced(temp, data)
    os.replace(temp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
