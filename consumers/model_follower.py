"""ModelFollower: the live model of every (property, model type), kept current from the model topic.

A pricing service embeds it. `start()` rebuilds the state from the beginning of the compacted
model topic: the last *deployed* ModelUpdated event per `property/model_type` key wins and only
those versions are loaded (older ones may be pruned from disk). A background thread then follows
new events. Before a model replaces another, its file's sha256 is checked and the Booster is fully
built; the swap is one reference assignment, so `predict` sees the old or the new model, never a
half-loaded one. Events of versions that were trained but not deployed change nothing. A model
that fails verification is logged and the previous one stays live.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

import numpy as np
import pandas as pd
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from consumers.model_artifacts import LoadedModel, load_model
from consumers.topic_tail import (DEFAULT_IDLE_SECONDS, assign_only_consumer, partitions_of, read_until_idle,
                                  usable)
from schemas.codec import default_codec
from schemas.errors import BookloopError
from schemas.settings import Settings

log = logging.getLogger(__name__)

MODEL_UPDATED = "bookloop.ModelUpdated"
FOLLOWER_GROUP = "bookloop-model-follower"  # never joined nor committed; librdkafka wants one
FIRST_MESSAGE_WAIT = 5.0  # seconds; a busy broker's first fetch can be slower than the idle period
SwitchCallback = Callable[[LoadedModel, "str | None"], None]


class ModelNotLoaded(BookloopError):
    """No deployed model of that property and type is known (yet)."""


class ModelFollower:
    def __init__(self, settings: Settings, on_switch: SwitchCallback | None = None,
                 idle_seconds: float = DEFAULT_IDLE_SECONDS, poll_seconds: float = 0.5):
        self.settings = settings
        self.on_switch = on_switch
        self.idle_seconds = idle_seconds
        self.poll_seconds = poll_seconds
        self._models: dict[tuple[str, str], LoadedModel] = {}  # replaced whole, never mutated
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, follow: bool = True) -> "ModelFollower":
        """Rebuild from the topic (blocking), then follow new events in a thread if `follow`."""
        consumer = assign_only_consumer(self.settings, FOLLOWER_GROUP)
        try:
            self._rebuild(consumer)
        except BaseException:
            consumer.close()
            raise
        if not follow:
            consumer.close()
            return self
        self._thread = threading.Thread(target=self._follow, args=(consumer,), name="model-follower",
                                        daemon=True)
        self._thread.start()
        return self

    def _rebuild(self, consumer: Consumer) -> None:
        topic = self.settings.model_topic
        partitions = partitions_of(consumer, topic, self.settings.delivery_timeout_seconds)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        live: dict[tuple[str, str], dict] = {}
        for msg in read_until_idle(consumer, self.idle_seconds, first_wait=FIRST_MESSAGE_WAIT):
            record = self._decode(msg)
            if record is not None and record["deployed"]:
                live[(record["property_id"], record["model_type"])] = record
        for record in live.values():
            self._apply(record)

    def _follow(self, consumer: Consumer) -> None:
        try:
            while not self._stop.is_set():
                msg = consumer.poll(self.poll_seconds)
                if msg is not None and usable(msg):
                    record = self._decode(msg)
                    if record is not None:
                        self._apply(record)
        except Exception:  # keep serving the models we have; say loudly that following stopped
            log.exception("the model follower stopped following %s", self.settings.model_topic)
        finally:
            consumer.close()

    def _decode(self, msg: Message) -> dict | None:
        try:
            return default_codec().decode(msg.value(), expect=MODEL_UPDATED)
        except BookloopError as exc:
            log.error("skipping undecodable model event %s[%d]@%d: %s", msg.topic(), msg.partition(),
                      msg.offset(), exc)
            return None

    def _apply(self, record: dict) -> None:
        key = (record["property_id"], record["model_type"])
        if not record["deployed"]:
            log.info("%s/%s %s was trained but not deployed; nothing to switch", *key, record["version"])
            return
        current = self._models.get(key)
        if current is not None and current.version == record["version"]:
            return
        try:
            loaded = load_model(record["artifact_uri"], record["artifact_sha256"], record["version"])
        except BookloopError as exc:
            log.error("not switching %s/%s to %s: %s", *key, record["version"], exc)
            return
        self._models = {**self._models, key: loaded}
        previous = None if current is None else current.version
        log.info("switched %s/%s from %s to %s (trigger %s)", *key, previous, loaded.version, record["trigger"])
        if self.on_switch is not None:
            self.on_switch(loaded, previous)

    def versions(self) -> dict[str, str]:
        """{"property/model_type": live version}."""
        return {f"{p}/{t}": model.version for (p, t), model in sorted(self._models.items())}

    def model(self, property_id: str, model_type: str) -> LoadedModel:
        model = self._models.get((property_id, model_type))
        if model is None:
            known = ", ".join(self.versions()) or "none"
            raise ModelNotLoaded(f"no deployed {model_type} model for {property_id!r} (live: {known})")
        return model

    def predict(self, property_id: str, model_type: str, rows: pd.DataFrame | list[dict]) -> np.ndarray:
        """Predictions of the live model for rows in the outcome store's layout (see model_features)."""
        return self.model(property_id, model_type).predict(rows)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> "ModelFollower":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
