"""Retrain one property's models (criteria -> train -> compare -> register), and many in parallel.

`retrain_property` is the unit of work: it runs in a child process per property when several
properties are retrained, and returns plain results (the printable lines included). The parent
publishes each result's ModelUpdated events, so the children never talk to Kafka.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterator

import lightgbm as lgb
import pyarrow as pa

from batch.registry import Registry, event_record
from batch.retrain_rules import (MIN_NEW_OUTCOMES, MIN_TOTAL_OUTCOMES, check_readiness, deploy_decision,
                                 primary_metric)
from batch.training import TrainedModel, TrainingData, evaluate, load_table, train
from consumers.model_artifacts import artifact_path
from schemas.errors import BookloopError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainOptions:
    model_types: tuple[str, ...]
    cutoff: datetime  # only outcomes with event time before it are used (`--as-of`)
    min_total: int = MIN_TOTAL_OUTCOMES
    min_new: int = MIN_NEW_OUTCOMES
    force: bool = False
    trigger: str = "schedule"  # schedule, manual, force or drift (the ModelUpdated `trigger`)
    store: str | None = None   # where outcomes are read (path or URI); None: <data_dir>/outcomes


@dataclass
class ModelResult:
    property_id: str
    model_type: str
    status: str  # retrained, not_deployed, skipped or failed
    reason: str
    lines: list[str] = field(default_factory=list)
    version: str | None = None
    previous_version: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    previous_metrics: dict[str, float] | None = None
    train_seconds: float | None = None
    rows: dict[str, int] | None = None
    artifact: str | None = None
    events: list[dict] = field(default_factory=list)  # ModelUpdated records, in publishing order


def retrain_property(data_dir: str, property_id: str, options: RetrainOptions,
                     num_threads: int = 0) -> list[ModelResult]:
    """Every requested model type of one property; never raises (failures become results)."""
    try:
        outcomes = TrainingData.from_table(load_table(data_dir, property_id, options.cutoff, options.store))
    except Exception as exc:  # a broken store must not stop the other properties
        log.exception("loading outcomes of %s failed", property_id)
        return [_failed(property_id, t, f"loading outcomes failed: {_describe(exc)}", [])
                for t in options.model_types]
    registry = Registry(data_dir)
    return [_retrain_model(registry, property_id, t, outcomes, options, num_threads)
            for t in options.model_types]


def _retrain_model(registry: Registry, property_id: str, model_type: str, outcomes: TrainingData,
                   options: RetrainOptions, num_threads: int) -> ModelResult:
    lines: list[str] = []
    try:
        latest = registry.latest(property_id, model_type)
        trained_until = None if latest is None else datetime.fromisoformat(latest["training_window"]["end"])
        readiness = check_readiness(outcomes.times, options.cutoff, trained_until, options.min_total,
                                    options.min_new, options.force)
        if not readiness.ready:
            lines.append(f"Skipping retrain: {readiness.reason}")
            return ModelResult(property_id, model_type, "skipped", readiness.reason, lines)
        lines += [f"Proceeding with retrain: {readiness.reason}", f"Loaded {len(outcomes)} outcomes"]
        model = train(model_type, outcomes, num_threads)
        lines += [f"Prepared {len(model.spec.names)} features", "Training model...",
                  f"Training complete. Best iteration: {model.best_iteration} ({model.seconds:.1f} s)"]
        return _register(registry, property_id, model_type, model, options, lines)
    except Exception as exc:  # one failing model must not stop the others
        if not isinstance(exc, BookloopError):
            log.exception("retraining %s/%s failed", property_id, model_type)
        lines.append(f"❌ Failed: {_describe(exc)}")
        return _failed(property_id, model_type, _describe(exc), lines)


def _register(registry: Registry, property_id: str, model_type: str, model: TrainedModel,
              options: RetrainOptions, lines: list[str]) -> ModelResult:
    live = registry.deployed(property_id, model_type)
    previous_metrics = _score_live(registry, live, model, lines)
    deploy, why = deploy_decision(model_type, model.metrics, previous_metrics)
    lines.extend(_comparison_lines(model_type, model.metrics, previous_metrics, live))
    meta = registry.save(property_id, model_type, model.booster.model_to_string(),
                         _metadata(model, options, live, previous_metrics, deploy, why),
                         datetime.now(timezone.utc))
    path = artifact_path(meta["artifact_uri"])
    if deploy:
        registry.deploy(property_id, model_type, meta["version"])
        lines.append(f"✅ New model deployed: {path}")
        events = [event_record(meta, deployed=True)]
    else:
        lines.append(f"❌ New model not deployed (performance regression): {why}; keeping {live['version']}")
        events = [event_record(meta, deployed=False), event_record(live, deployed=True)]
    registry.prune(property_id, model_type)
    return ModelResult(property_id, model_type, "retrained" if deploy else "not_deployed", why, lines,
                       meta["version"], None if live is None else live["version"], model.metrics,
                       previous_metrics, round(model.seconds, 2), meta["rows"], str(path), events)


def _score_live(registry: Registry, live: dict | None, model: TrainedModel, lines: list[str]) -> dict | None:
    """The deployed model's metrics on the new model's validation rows (None: nothing to compare)."""
    if live is None:
        return None
    try:
        loaded = registry.load(live["property_id"], live["model_type"], live["version"])
    except BookloopError as exc:
        lines.append(f"⚠️  Deployed model {live['version']} cannot be scored ({exc}); not comparing")
        return None
    return evaluate(live["model_type"], model.validation_target, loaded.predict(model.validation_frame))


def _comparison_lines(model_type: str, new: dict, previous: dict | None, live: dict | None) -> list[str]:
    name = primary_metric(model_type)
    label = name.upper()
    if previous is None:
        return [f"New model {label}: {new[name]:.4f}"]
    change = (new[name] - previous[name]) / previous[name] * 100 if previous[name] else 0.0
    if name == "rmse":
        change = -change  # a lower RMSE is an improvement
    return [f"Previous model {label}: {previous[name]:.4f} ({live['version']}, on the same validation rows)",
            f"New model {label}: {new[name]:.4f} (improvement: {change:+.2f}%)"]


def _metadata(model: TrainedModel, options: RetrainOptions, live: dict | None,
              previous_metrics: dict | None, deploy: bool, why: str) -> dict:
    start, end = model.window
    return {
        "trigger": options.trigger, "previous_version": None if live is None else live["version"],
        "metrics": model.metrics, "previous_metrics": previous_metrics,
        "deploy_decision": {"deployed": deploy, "reason": why},
        "feature_spec": model.spec.to_dict(),
        "training_window": {"start": start.isoformat(), "end": end.isoformat(),
                            "cutoff": options.cutoff.isoformat()},
        "rows": {"train": model.train_rows, "validation": model.validation_rows},
        "best_iteration": model.best_iteration, "params": model.params, "lightgbm_version": lgb.__version__,
        "train_seconds": round(model.seconds, 2),
    }


def _failed(property_id: str, model_type: str, reason: str, lines: list[str]) -> ModelResult:
    return ModelResult(property_id, model_type, "failed", reason, lines)


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, BookloopError) else f"{type(exc).__name__}: {exc}"


def run_properties(data_dir: str, properties: list[str], options: RetrainOptions,
                   on_result: Callable[[ModelResult], None], dask_scheduler: str | None = None) -> list[ModelResult]:
    """Retrain every property (in parallel processes when there are several, or on the Dask
    cluster at `dask_scheduler`); `on_result` sees each result as soon as its property is done."""
    results = []
    if dask_scheduler:
        from batch.retrain_dask import dask_batches
        batches = dask_batches(dask_scheduler, data_dir, properties, options)
    else:
        batches = _property_batches(data_dir, properties, options)
    for batch in batches:
        for result in batch:
            on_result(result)
            results.append(result)
    return results


def _init_worker() -> None:
    """A retrain process reads hundreds of small part files per property: Arrow's system allocator
    spends less time (mostly page faults) on their short-lived buffers than its default mimalloc."""
    pa.set_memory_pool(pa.system_memory_pool())


def _property_batches(data_dir: str, properties: list[str], options: RetrainOptions) -> Iterator[list]:
    cores = os.cpu_count() or 1
    workers = max(1, min(len(properties), cores))
    if workers == 1:
        for property_id in properties:
            yield retrain_property(data_dir, property_id, options, num_threads=cores)
        return
    # spawn: a forked child could inherit held locks of the parent's Kafka and OpenMP threads
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
        futures = {pool.submit(retrain_property, data_dir, p, options, max(1, cores // workers)): p
                   for p in properties}
        for future in as_completed(futures):
            try:
                yield future.result()
            except Exception as exc:  # the child died (e.g. out of memory): report its models
                reason = f"training process failed: {_describe(exc)}"
                yield [_failed(futures[future], t, reason, [f"❌ Failed: {reason}"]) for t in options.model_types]
