"""Time each step of a benchmark workload's jitted plans: ``python tests/tools/profile_plan.py mlp``.

Builds the given step builders of ``fnnet.bench.workloads`` (default: ``fnnet32_train`` and ``fnnet16``,
the float32 train step and the mixed-precision one), warms them past their plans' first thread trial, then
runs them interleaved, one step each per round, and prints per builder the median step time and the median
time of each recorded step inside its plans (op, kind and position), largest first.  Wrapping each step in
a timer adds about a microsecond per step.  ``--threads 0|1`` pins every plan to the caller's thread count
or to one thread after the warm-up (no later trials), to compare the two in steady state.  A developer
tool for finding where a step's time goes; not part of the test suite.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import time

import numpy as np


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("workload")
    p.add_argument("builders", nargs="*", default=["fnnet32_train", "fnnet16"])
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--threads", type=int, choices=(0, 1), default=None)
    p.add_argument("--top", type=int, default=12)
    args = p.parse_args(argv)

    plan_module = importlib.import_module("fnnet.jit._plan")
    from fnnet.bench import timing, workloads

    times = collections.defaultdict(list)
    owner = [None]
    generate = plan_module._generate

    def timed(fn, i, builder):
        prim = getattr(fn, "prim", None)
        host = getattr(fn, "fn", None) or getattr(fn, "fast", None) or getattr(fn, "quick", None)
        what = getattr(prim, "name", None) or getattr(host, "__qualname__", None) or type(host).__name__
        name = (builder, f"{type(fn).__name__}:{what}#{i}")

        def step(*a, **k):
            start = time.perf_counter()
            out = fn(*a, **k)
            times[name].append(time.perf_counter() - start)
            return out

        for attr in ("writing_into", "dynamic"):
            if hasattr(fn, attr):
                setattr(step, attr, getattr(fn, attr))
        return step

    plan_module._generate = lambda steps, *a: generate(
        [(timed(s[0], i, owner[0]), *s[1:]) for i, s in enumerate(steps)], *a)
    runs, plans = {}, {}
    for builder in args.builders:
        owner[0] = builder
        before = set(map(id, _plans(plan_module)))
        runs[builder] = workloads.BUILDERS[builder](args.workload)
        for _ in range(timing.WARMUP):
            runs[builder]()
        plans[builder] = [p for p in _plans(plan_module) if id(p) not in before]
        for plan in plans[builder]:
            if args.threads is not None:
                plan.threads, plan._next_trial = args.threads, float("inf")
    times.clear()
    totals = collections.defaultdict(list)
    for _ in range(args.rounds):
        for builder, run in runs.items():
            start = time.perf_counter()
            run()
            totals[builder].append(time.perf_counter() - start)
    for builder in runs:
        steps = {name: float(np.median(v)) * 1e3 for (b, name), v in times.items() if b == builder}
        threads = [p.threads for p in plans[builder]]
        print(f"{builder}: step {np.median(totals[builder]) * 1e3:.3f} ms (median of {args.rounds}), "
              f"sum of step medians {sum(steps.values()):.3f} ms, plan thread counts {threads}")
        for name, ms in sorted(steps.items(), key=lambda kv: -kv[1])[:args.top]:
            print(f"  {ms:8.4f} ms  {name}")


def _plans(plan_module):
    import gc

    return [o for o in gc.get_objects() if isinstance(o, plan_module.Plan)]


if __name__ == "__main__":
    main()
