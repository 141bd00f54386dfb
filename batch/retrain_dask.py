"""`bookloop retrain --dask-scheduler ADDRESS`: one task per property on an existing Dask cluster.

Each task is `retrain_property` (the same function the local process pool runs), so a property
trains the same way wherever it runs. The workers read the outcomes (`BOOKLOOP_STORE_URI`, or
`<data_dir>/outcomes`) and write the model registry under `data_dir`, so that folder must be the
same shared filesystem on every worker; the client (this process) publishes the ModelUpdated
events, the workers never talk to Kafka. Needs the `dask` extra: pip install 'bookloop[dask]'.
"""
from __future__ import annotations

import logging
import uuid
from typing import Iterator

from batch.retrain import ModelResult, RetrainOptions, _describe, _failed, retrain_property
from schemas.errors import BookloopError, ConfigError

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_SECONDS = 30


TASK_THREADS = 1  # LightGBM threads per task: a worker runs one task per thread slot (`--nthreads`)


def retrain_on_worker(data_dir: str, property_id: str, options: RetrainOptions) -> list[ModelResult]:
    """One task. The parallelism is Dask's (one property per worker thread slot; start workers with
    `--nthreads` = their cores), so LightGBM itself runs single-threaded and never oversubscribes."""
    return retrain_property(data_dir, property_id, options, num_threads=TASK_THREADS)


def dask_batches(address: str, data_dir: str, properties: list[str],
                 options: RetrainOptions) -> Iterator[list[ModelResult]]:
    """Each property's results as its task finishes; a task that fails becomes failed results."""
    client = _connect(address)
    run = uuid.uuid4().hex[:8]
    try:
        futures = {client.submit(retrain_on_worker, data_dir, p, options, key=f"bookloop-retrain-{p}-{run}",
                                 pure=False, retries=0): p for p in properties}
        log.info("submitted %d properties to the Dask scheduler at %s", len(futures), address)
        from distributed import as_completed
        for future in as_completed(futures, loop=client.loop):
            try:
                yield future.result()
            except Exception as exc:  # the task raised, or its worker died
                reason = f"Dask task failed: {_describe(exc)}"
                yield [_failed(futures[future], t, reason, [f"❌ Failed: {reason}"]) for t in options.model_types]
    finally:
        client.close()


def _connect(address: str):
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError("--dask-scheduler needs dask.distributed: pip install 'bookloop[dask]'") from None
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise BookloopError(f"cannot reach the Dask scheduler at {address!r} within {CONNECT_TIMEOUT_SECONDS} s "
                            f"({type(exc).__name__}: {exc}); check the address (tcp://host:8786)") from None
