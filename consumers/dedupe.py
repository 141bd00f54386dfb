"""Dedupe state of one Kafka partition: which event_ids landed (or are buffered) lately.

Why not a Faust table with a changelog: the changelog would record an id as "seen" before the
parquet file holding it is durable, so a crash between the two would drop the event on replay
(Faust's own reports of tables losing updates on kill -9 point the same way). Instead the state is
rebuilt from what actually landed: on (re)assignment the worker reads the event_ids of this
partition's part files that the resumed consumption could meet again (files at or after the
resume offset) and those within the horizon, then keeps it up to date in memory. The landed data
is the single source of truth, so state and data can never disagree.

Verdicts for an incoming event (`id` = event_id, offset = its Kafka offset):
  NEW          id not seen                      -> buffer it
  REDELIVERED  id seen at this very offset      -> Kafka gave us the same message again; skip
  DUPLICATE    id seen at another offset, same content -> producer re-sent it; drop, count
  CONFLICT     id seen with different content   -> first write wins; drop, count
Memory is bounded by the horizon: ids whose event day is older than the partition's newest event
day minus `horizon_days` are evicted. Ids reloaded from files at or after the resume offset are
*pinned* whatever their event day (a late event must still be recognised when Kafka redelivers it)
until consumption has moved past the last offset those files hold.
"""
from __future__ import annotations

from collections import defaultdict
from enum import Enum


class Verdict(Enum):
    NEW = "new"
    REDELIVERED = "redelivered"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


class DedupeIndex:
    def __init__(self, horizon_days: int):
        self.horizon_days = horizon_days
        self._seen: dict[str, tuple[int, int]] = {}   # event_id -> (digest, offset)
        self._by_day: dict[int, list[str]] = defaultdict(list)  # day ordinal -> ids
        self._newest_day = 0
        self._pinned: dict[str, tuple[int, int]] = {}
        self._pinned_until = -1

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, event_id: str, digest: int, offset: int) -> Verdict:
        if self._pinned and offset > self._pinned_until:
            self._pinned.clear()
        seen = self._seen.get(event_id) or self._pinned.get(event_id)
        if seen is None:
            return Verdict.NEW
        if seen[1] == offset:
            return Verdict.REDELIVERED
        return Verdict.DUPLICATE if seen[0] == digest else Verdict.CONFLICT

    def add(self, event_id: str, digest: int, offset: int, day: int, evict: bool = True) -> None:
        """Remember an id; `day` is its event day (days since the epoch)."""
        self._seen[event_id] = (digest, offset)
        self._by_day[day].append(event_id)
        if day > self._newest_day:
            self._newest_day = day
            if evict:
                self._evict()

    def rewind(self, newest_day: int) -> None:
        """After a reload: the horizon counts from `newest_day`, not from the newest id loaded."""
        self._newest_day = newest_day
        self._evict()

    def pin(self, event_id: str, digest: int, offset: int, until_offset: int) -> None:
        self._pinned[event_id] = (digest, offset)
        self._pinned_until = max(self._pinned_until, until_offset)

    def _evict(self) -> None:
        oldest_kept = self._newest_day - self.horizon_days
        for day in [d for d in self._by_day if d < oldest_kept]:
            for event_id in self._by_day.pop(day):
                self._seen.pop(event_id, None)
