"""`bookloop models list|rollback` and `bookloop follow-models`."""
from __future__ import annotations

import json
import signal
import threading

import click

from batch.registry import Registry, event_record
from batch.retrain_rules import primary_metric
from consumers.model_artifacts import LoadedModel
from consumers.model_follower import ModelFollower
from producers.model_events import ModelEventPublisher
from producers.topics import ensure_topics
from schemas.settings import Settings


def model_rows(registry: Registry, property_id: str | None) -> list[dict]:
    """One row per registered version, newest first within each property/model type."""
    rows = []
    for prop, model_type in registry.pairs(property_id):
        deployed = registry.deployed_version(prop, model_type)
        for version in reversed(registry.versions(prop, model_type)):
            meta = registry.metadata(prop, model_type, version)
            rows.append({"property_id": prop, "model_type": model_type, "version": version,
                         "deployed": version == deployed, "created_at": meta["created_at"],
                         "trigger": meta["trigger"], "metrics": meta["metrics"],
                         "rows": meta["rows"], "previous_version": meta.get("previous_version")})
    return rows


def list_models(settings: Settings, property_id: str | None, as_json: bool) -> None:
    rows = model_rows(Registry(settings.data_dir), property_id)
    if as_json:
        click.echo(json.dumps(rows, sort_keys=True))
        return
    if not rows:
        click.echo(f"no models under {Registry(settings.data_dir).root}")
        return
    click.echo(f"{'property':<12} {'type':<11} {'version':<17} {'live':<5} {'metric':<14} {'trigger':<9} created")
    for row in rows:
        name = primary_metric(row["model_type"])
        metric = f"{name}={row['metrics'][name]:.4f}"
        click.echo(f"{row['property_id']:<12} {row['model_type']:<11} {row['version']:<17} "
                   f"{'*' if row['deployed'] else '':<5} {metric:<14} {row['trigger']:<9} {row['created_at']}")


def rollback(settings: Settings, property_id: str, model_type: str, to: str | None) -> None:
    """Point the deployed model back (after checking its file) and announce it with a ModelUpdated event."""
    registry = Registry(settings.data_dir)
    current = registry.deployed_version(property_id, model_type)
    target = registry.rollback_target(property_id, model_type, to)
    registry.load(property_id, model_type, target)  # sha256 and model file checked before it goes live
    registry.deploy(property_id, model_type, target)
    meta = registry.metadata(property_id, model_type, target)
    ensure_topics(settings)
    with ModelEventPublisher(settings) as publisher:
        offset = publisher.publish(event_record(meta, deployed=True, trigger="rollback",
                                                previous_version=current))
    click.echo(f"rolled back {property_id}/{model_type} from {current} to {target}; "
               f"published ModelUpdated to {settings.model_topic} at offset {offset}")


def follow_models(settings: Settings, once: bool, as_json: bool) -> None:
    """Rebuild from the model topic, print the live versions, then log each switch until stopped."""
    def announce(model: LoadedModel, previous: str | None) -> None:
        if not started.is_set():
            return
        key = f"{model.property_id}/{model.model_type}"
        click.echo(json.dumps({"switched": key, "from": previous, "to": model.version}) if as_json
                   else f"switched {key} from {previous} to {model.version}")

    started = threading.Event()
    follower = ModelFollower(settings, on_switch=announce).start(follow=not once)
    versions = follower.versions()
    click.echo(json.dumps(versions, sort_keys=True) if as_json else _versions_text(versions))
    if once:
        return
    started.set()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        follower.stop()


def _versions_text(versions: dict[str, str]) -> str:
    if not versions:
        return "no deployed models announced yet"
    return "\n".join(f"live {key}: {version}" for key, version in versions.items())

