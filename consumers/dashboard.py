"""The seed's dashboard documents: outcomes overview and model performance.

Model performance reads the model registry that `bookloop retrain` writes (layout documented in
batch/registry.py; consumers must not import batch, so only the on-disk layout is shared):
    <data_dir>/models/<percent-encoded property>/<model_type>/<vYYYYMMDD_HHMMSS>/metadata.json
                                                 <model_type>/deployed.json
No registry yet means empty results, not an error.
"""
from __future__ import annotations

import json
import re
from datetime import date, datetime, timezone
from pathlib import Path

from consumers.paths import decode_segment
from consumers.storage import OutcomesStorage

MODELS = "models"
METADATA = "metadata.json"
DEPLOYED = "deployed.json"
_VERSION = re.compile(r"^v(\d{8}_\d{6})$")


def overview(storage: OutcomesStorage, as_of: date | datetime | None = None) -> dict:
    """Totals over every property's stats, plus one line per property (recent: relative to as_of)."""
    rows = []
    for prop in storage.list_properties():
        stats = storage.get_statistics(prop, as_of)
        if stats["exists"]:
            rows.append({"property_id": prop, "total_outcomes": stats["total_records"],
                         "recent_outcomes_7d": stats["recent_activity"]["last_7_days"],
                         "acceptance_rate": stats["acceptance_rate"], "avg_price": stats["avg_quoted_price"]})
    rates = [r["acceptance_rate"] for r in rows if r["acceptance_rate"] is not None]
    versions = list(_versions(storage.data_dir / MODELS))
    return {
        "success": True,
        "overview": {
            "total_properties": len(rows), "total_outcomes": sum(r["total_outcomes"] for r in rows),
            "recent_outcomes_7d": sum(r["recent_outcomes_7d"] for r in rows),
            "avg_acceptance_rate": round(sum(rates) / len(rates), 4) if rates else None,
            "total_models": len(versions),
            "cached_models": sum(1 for folder in _model_folders(storage.data_dir / MODELS)
                                 if (folder / DEPLOYED).is_file()),
        },
        "properties": rows,
        "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def model_performance(data_dir: str | Path) -> dict:
    """Registered versions per property and model type (newest first) and a summary over the
    newest version of each (property, model type)."""
    by_property: dict[str, dict[str, list[dict]]] = {}
    for prop, model_type, version, meta in _versions(Path(data_dir) / MODELS):
        entry = {"version": version, "timestamp": _VERSION.match(version).group(1),
                 "metrics": meta.get("metrics") or {},
                 "num_features": len((meta.get("feature_spec") or {}).get("features") or [])}
        by_property.setdefault(prop, {}).setdefault(model_type, []).append(entry)
    for models in by_property.values():
        for entries in models.values():
            entries.sort(key=lambda e: e["version"], reverse=True)
    newest = [entries[0] for models in by_property.values() for entries in models.values()]
    aucs = [e["metrics"]["auc"] for e in newest if isinstance(e["metrics"].get("auc"), (int, float))]
    return {
        "success": True,
        "summary": {
            "total_properties": len(by_property),
            "avg_auc": round(sum(aucs) / len(aucs), 4) if aucs else None,
            "avg_num_features": round(sum(e["num_features"] for e in newest) / len(newest), 1) if newest else None,
            "models_count": len(newest),
        },
        "performance_by_property": by_property,
    }


def _model_folders(root: Path):
    if not root.is_dir():
        return
    for prop_dir in sorted(root.iterdir()):
        if prop_dir.is_dir() and not prop_dir.name.startswith("."):
            yield from (t for t in sorted(prop_dir.iterdir()) if t.is_dir() and not t.name.startswith("."))


def _versions(root: Path):
    """(property, model type, version, metadata) of every readable registered version."""
    for folder in _model_folders(root):
        for version_dir in sorted(folder.iterdir()):
            if not _VERSION.match(version_dir.name):
                continue
            try:
                meta = json.loads((version_dir / METADATA).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # a version being written or pruned right now
            yield decode_segment(folder.parent.name), folder.name, version_dir.name, meta
