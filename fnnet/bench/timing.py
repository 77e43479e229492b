"""Timing helpers shared by the benchmark workers."""

from __future__ import annotations

import resource
import statistics
import time


#: Calls before timing starts: more than a jitted plan's replays up to the end of its first thread trial
#: (``fnnet.jit._plan.FIRST_TRIAL + TRIAL_REPLAYS``), so no timed call is a replay of that trial; the same for
#: every framework.  (Later trials, after 128 replays and at each doubling, are part of a run as users see it.)
WARMUP = 52


def median_ms(fn, *, warmup=WARMUP, repeats=7, min_time=0.05, max_steps=1000):
    """Median over ``repeats`` runs of the mean time of ``fn()`` in milliseconds.

    Each run calls ``fn`` enough times to last at least ``min_time`` seconds (decided once, after warm-up).
    """
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, min(max_steps, int(min_time / once)))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner * 1e3)
    return statistics.median(samples)


def first_call_ms(fn) -> float:
    """Time of ``fn``'s first call in milliseconds: for ``fnnet.jit`` steps the trace (and for every framework
    anything done lazily on a first call; kernels come from the warm disk cache unless it was emptied)."""
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
