"""What `bookloop retrain` prints: the seed's per-model blocks and RETRAINING SUMMARY, or JSON."""
from __future__ import annotations

import json
from collections import Counter

from batch.retrain import ModelResult

RULE = "=" * 80
STATUSES = ("retrained", "not_deployed", "skipped", "failed")


def model_block(result: ModelResult) -> str:
    header = f"Retraining {result.model_type} model for property {result.property_id}"
    return "\n".join([RULE, header, RULE, "", *result.lines, ""])


def summary_counts(results: list[ModelResult]) -> dict[str, int]:
    counts = Counter(r.status for r in results)
    return {"total_properties": len({r.property_id for r in results}), "total_models": len(results),
            **{status: counts.get(status, 0) for status in STATUSES}}


def summary_text(results: list[ModelResult]) -> str:
    counts = summary_counts(results)
    return "\n".join([
        RULE, "RETRAINING SUMMARY", RULE,
        f"Total properties: {counts['total_properties']}",
        f"Total models: {counts['total_models']}",
        f"Successfully retrained: {counts['retrained']}",
        f"Trained but not deployed: {counts['not_deployed']}",
        f"Skipped: {counts['skipped']}",
        f"Failed: {counts['failed']}",
        RULE,
    ])


def result_json(result: ModelResult) -> dict:
    return {"property_id": result.property_id, "model_type": result.model_type, "status": result.status,
            "reason": result.reason, "version": result.version, "previous_version": result.previous_version,
            "metrics": result.metrics, "previous_metrics": result.previous_metrics,
            "train_seconds": result.train_seconds, "rows": result.rows, "artifact": result.artifact}


def report_json(results: list[ModelResult], as_of: str | None, seconds: float) -> str:
    return json.dumps({"as_of": as_of, "seconds": round(seconds, 2), "summary": summary_counts(results),
                       "results": [result_json(r) for r in results]}, sort_keys=True)
