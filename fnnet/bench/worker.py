"""One benchmark measurement in this process; prints a JSON line.  Run by ``fnnet.bench`` in a fresh
process per framework so that frameworks never share a process (threads, allocators, caches); with
``--serve`` (smoke runs) one measurement per line of stdin."""

from __future__ import annotations

import argparse
import json
import sys


def _set_threads(framework, threads):
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
    elif framework.startswith("fnnet"):
        import numba

        import fnnet  # noqa: F401  (threading layer)

        numba.set_num_threads(threads)


def _threading_layer():
    """The layer Numba's parallel kernels ran on in this process (None if none ran)."""
    import numba

    try:
        return numba.threading_layer()
    except ValueError:
        return None


def main(argv=None):
    if argv is None and sys.argv[1:] == ["--serve"]:
        return _serve()
    print(json.dumps(_measure(argv)))
    sys.stdout.flush()


def _serve():
    """``--serve``: one measurement per line of stdin (a JSON list of arguments), one JSON line each on
    stdout, until stdin closes (``fnnet.bench.measure.SmokeWorkers``, smoke runs only)."""
    from .measure import RESULT_PREFIX

    for line in sys.stdin:
        print(RESULT_PREFIX + json.dumps(_measure(json.loads(line))))
        sys.stdout.flush()


def _measure(argv):
    p = argparse.ArgumentParser()
    p.add_argument("framework")
    p.add_argument("workload")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--min-time", type=float, default=0.05)
    p.add_argument("--steps", type=int, default=0, help="memory mode: run this many steps, report peak RSS")
    p.add_argument("--warmup", type=int, default=None,
                   help="calls before timing (default: timing.WARMUP for steps, ops.OP_WARMUP for ops)")
    args = p.parse_args(argv)
    _set_threads(args.framework, args.threads)
    from . import timing

    if args.workload.startswith("op:"):
        from .ops import OP_BENCHES, OP_WARMUP

        warmup = OP_WARMUP if args.warmup is None else args.warmup
        result = OP_BENCHES[args.framework](args.workload[3:], args.repeats, args.min_time, warmup)
    else:
        from .workloads import BUILDERS

        step = BUILDERS[args.framework](args.workload, args.batch)
        if args.steps:
            for _ in range(args.steps):
                step()
            result = {"peak_rss_mb": timing.peak_rss_mb()}
        else:
            first_ms = timing.first_call_ms(step)
            warmup = timing.WARMUP if args.warmup is None else args.warmup
            result = {"ms": timing.median_ms(step, warmup=warmup, repeats=args.repeats, min_time=args.min_time),
                      "first_ms": first_ms}
    if args.framework.startswith("fnnet"):
        result["threading_layer"] = _threading_layer()
    return result


if __name__ == "__main__":
    main()
