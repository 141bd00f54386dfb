"""Crash points for the fault-injection suite (`make chaos`), off unless asked for.

BOOKLOOP_FAILPOINT=<name>:<n> makes the worker SIGKILL itself the n-th time it reaches the point
called <name> — so a test can crash it exactly inside a flush, which random kills rarely hit.
Points: flush_after_temp_files (files written and fsynced, none published) and
flush_between_links (some files of the flush published, the others not).
"""
from __future__ import annotations

import os
import signal
from collections import Counter

_SPEC = os.environ.get("BOOKLOOP_FAILPOINT", "")
_hits: Counter = Counter()


def reach(name: str) -> None:
    if not _SPEC:
        return
    target, _, nth = _SPEC.partition(":")
    if target == name:
        _hits[name] += 1
        if _hits[name] == int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)
