"""Ack events to Faust strictly in offset order, per partition.

Events finish out of order: a duplicate is done at once, an event in an open window only when
that window lands, a late event before older on-time ones. Faust commits the longest run of acked
offsets, but when a partition has no committed offset yet (a new group) it takes the first run it
finds even if it does not start where consumption started — committing past events that are still
only in memory. So we hand Faust an ack only once every earlier offset of its partition (since
this assignment) is done, and its commits can never run ahead of the data on disk.
"""
from __future__ import annotations

from collections import deque
from typing import Any


class OrderedAcks:
    def __init__(self) -> None:
        self._received: dict[int, deque[tuple[int, Any]]] = {}
        self._done: dict[int, set[int]] = {}

    def track(self, partition: int, offset: int, handle: Any) -> None:
        """Register an event as it arrives (arrival order is offset order within a partition)."""
        self._received.setdefault(partition, deque()).append((offset, handle))

    def complete(self, partition: int, offset: int) -> None:
        self._done.setdefault(partition, set()).add(offset)

    def ready(self) -> list[Any]:
        """Handles whose offset and every earlier tracked offset are done; they leave the tracker."""
        out = []
        for partition, queue in self._received.items():
            done = self._done.get(partition)
            while queue and done and queue[0][0] in done:
                offset, handle = queue.popleft()
                done.discard(offset)
                out.append(handle)
        return out

    def pending(self) -> int:
        return sum(len(q) for q in self._received.values())

    def reset(self) -> None:
        """A new consumer generation: Faust re-reads from the committed offsets, start over."""
        self._received.clear()
        self._done.clear()
