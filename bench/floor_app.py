"""The Faust floor of figure 1: a trivial agent that only decodes the outcomes topic in take()
batches. Run as `python -m bench.floor_app` with the worker's env settings; it writes the wall
time of its first batch to $BENCH_FIRST_CONSUMED_FILE."""
from __future__ import annotations

import os
import time
from pathlib import Path

import faust

from consumers.app import faust_app
from schemas.codec import default_codec
from schemas.settings import Settings


def create_floor(settings: Settings, mark: Path) -> faust.App:
    app = faust_app(settings)
    codec = default_codec()
    topic = app.topic(settings.outcomes_topic, key_type=bytes, value_type=bytes,
                      key_serializer="raw", value_serializer="raw")

    async def decode_only(stream):
        async for values in stream.take(settings.take_batch, within=0.5):
            if not mark.exists():
                mark.write_text(repr(time.time()))
            for value in values:
                codec.decode(value)

    app.agent(topic, name="bench.floor")(decode_only)
    return app


def main() -> None:
    settings = Settings.from_env()
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    app = create_floor(settings, Path(os.environ["BENCH_FIRST_CONSUMED_FILE"]))
    worker = faust.Worker(app, loglevel="warn", quiet=True, redirect_stdouts=False, override_logging=False)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
