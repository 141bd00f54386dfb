"""The worker's side of its decode helpers (consumers/decode_helper.py): child processes that read,
validate and lay out batches of events on the machine's other cores while the Faust event loop
accepts the previous batch and lands its files.

`submit(values)` hands a batch to the next helper (round robin) and returns a future of its
answers, in the order of `values`: `(property_id, row)` or None (read that value in the worker).
The future's result is None as a whole when no helper could answer (none started yet, or it
died): the worker then reads the whole batch itself. A helper that died, or has not answered a
batch for ANSWER_SECONDS (hung: stopped, or stuck in a call), is killed, counted in
`bookloop_decode_helpers_lost_total`, and started again at most every RESTART_SECONDS.
"""
from __future__ import annotations

import asyncio
import logging
import os
import pickle
import sys
import time
from collections import deque
from typing import Callable

from consumers.decode_helper import FRAME_LENGTH, encode_frame
from schemas.settings import Settings

log = logging.getLogger("bookloop.decode")
RESTART_SECONDS = 10.0
ANSWER_SECONDS = 30.0   # a batch takes well under a second; a registry lookup is bounded by its timeout
_PIPE_LIMIT = 16 * 2**20


class _Helper:
    def __init__(self, proc: asyncio.subprocess.Process, on_lost: Callable[[], None]):
        self.proc = proc
        self.waiting: deque[tuple[asyncio.Future, float]] = deque()   # (answer, monotonic time sent)
        self.alive = True
        self._on_lost = on_lost
        self.reader = asyncio.ensure_future(self._read_answers())

    def overdue(self, now: float) -> bool:
        return bool(self.waiting) and now - self.waiting[0][1] > ANSWER_SECONDS

    def abandon(self, why: str) -> None:
        """Stop relying on this helper: its waiting batches are read by the worker."""
        if self.alive:
            log.error("decode helper %d %s; the worker reads its batches itself", self.proc.pid, why)
            self._on_lost()
        self.alive = False
        if self.proc.returncode is None:
            self.proc.kill()
        while self.waiting:
            future, _sent = self.waiting.popleft()
            if not future.done():
                future.set_result(None)

    def send(self, message: object) -> None:
        # no drain(): at most two batches are in flight, so the transport's buffer stays bounded
        self.proc.stdin.write(encode_frame(message))

    async def _read_answers(self) -> None:
        try:
            while True:
                (length,) = FRAME_LENGTH.unpack(await self.proc.stdout.readexactly(FRAME_LENGTH.size))
                answers = pickle.loads(await self.proc.stdout.readexactly(length))
                future, _sent = self.waiting.popleft()
                if not future.done():
                    future.set_result(answers)
        except (asyncio.IncompleteReadError, ConnectionError, pickle.UnpicklingError, IndexError) as exc:
            self.abandon(f"stopped answering ({type(exc).__name__})")

    async def close(self) -> None:
        self.alive = False
        if self.proc.returncode is None:
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 5.0)
            except asyncio.TimeoutError:
                self.proc.kill()
        self.reader.cancel()


class DecodePool:
    def __init__(self, settings: Settings, count: int, on_lost: Callable[[], None] = lambda: None):
        self.settings = settings
        self.count = count
        self._on_lost = on_lost
        self._helpers: list[_Helper] = []
        self._taught: list[dict] = []
        self._next = 0
        self._started_at = float("-inf")

    async def start(self) -> None:
        """Start the helpers that are not running (at most every RESTART_SECONDS)."""
        if time.monotonic() - self._started_at < RESTART_SECONDS:
            return
        self._started_at = time.monotonic()
        self._helpers = [h for h in self._helpers if h.alive]
        env = {**os.environ, **self.settings.to_env()}
        while len(self._helpers) < self.count:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "consumers.decode_helper", env=env, limit=_PIPE_LIMIT,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            helper = _Helper(proc, self._on_lost)
            for schema in self._taught:
                helper.send(("schema", schema))
            self._helpers.append(helper)
            log.info("decode helper %d started", proc.pid)

    def submit(self, values: list[bytes | None]) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        live = [h for h in self._helpers if h.alive]
        if not live:
            future.set_result(None)
            if self.count and self._helpers:   # they died: start new ones, not waiting for them
                asyncio.ensure_future(self.start())
            return future
        helper = live[self._next % len(live)]
        self._next += 1
        helper.waiting.append((future, time.monotonic()))
        helper.send(("batch", values))
        return future

    def check(self) -> None:
        """Give up on helpers that have not answered a batch for ANSWER_SECONDS (call it often)."""
        now = time.monotonic()
        for helper in self._helpers:
            if helper.alive and helper.overdue(now):
                helper.abandon(f"has not answered a batch in {ANSWER_SECONDS:.0f} s (hung?); killed it")

    def teach(self, schema: dict) -> None:
        """A writer schema the worker learned (announced on the schema topic): helpers decode it too."""
        self._taught.append(schema)
        for helper in self._helpers:
            if helper.alive:
                helper.send(("schema", schema))

    async def close(self) -> None:
        for helper in self._helpers:
            await helper.close()
        self._helpers = []
