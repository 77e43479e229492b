"""Interleaved timing for the kernel tools here: every call once per round, so drifts hit all alike."""

from __future__ import annotations

import time


def interleaved_seconds(calls, rounds, before=None) -> dict:
    """``{name: [seconds per round]}`` for ``calls`` (``{name: zero-argument callable}``), each called once
    first (compiles, warm-up), then once per round in order; ``before(name)``, when given, runs untimed
    right before each timed call."""
    for call in calls.values():
        call()
    seconds = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            if before is not None:
                before(name)
            start = time.perf_counter()
            call()
            seconds[name].append(time.perf_counter() - start)
    return seconds
