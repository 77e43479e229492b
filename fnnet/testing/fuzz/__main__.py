"""Command line: ``python -m fnnet.testing.fuzz --cases 50000 [--seed S] [--jobs N]``, or one case with
``--case SEED:INDEX`` (run in this process).  Exit status 1 when any case is a failure."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from . import runner
from .cases import run_case
from .classify import FAILURES


def _parser():
    p = argparse.ArgumentParser(prog="python -m fnnet.testing.fuzz", description=__doc__)
    p.add_argument("--cases", type=int, default=3000, help="number of cases (default 3000)")
    p.add_argument("--start", type=int, default=0, help="index of the first case")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: one per core)")
    p.add_argument("--timeout", type=float, default=runner.TIMEOUT,
                   help=f"seconds before a case is a hang (default {runner.TIMEOUT:g}: a first Numba compile on a "
                        "busy machine can take a minute)")
    p.add_argument("--case", help="run the one case SEED:INDEX here and print what happened")
    p.add_argument("--failures", action="store_true", help="list every failure, not the first of each class")
    p.add_argument("--targets", help=argparse.SUPPRESS)  # module:attribute of another spec table (tests)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--slot", default="0/1", help=argparse.SUPPRESS)  # a worker's INDEX/COUNT among all (warm-up order)
    return p


def _progress(done, total):
    if done % 1000 == 0 or done == total:
        print(f"{done}/{total} cases", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.worker:
        slot, slots = (int(n) for n in args.slot.split("/"))
        runner.serve(args.seed, args.targets, json.loads(sys.stdin.readline()), args.timeout, slot=slot, slots=slots)
        return 0
    if args.case:
        seed, _, index = args.case.partition(":")
        r = run_case(int(seed), int(index), args.targets)
        print(f"case {r['id']}: {r['target']} / {r['mutation']} ({r['note']})\n{r['class']}: {r['detail']}")
        return int(r["class"] in FAILURES)
    start = time.perf_counter()
    results = runner.run(range(args.start, args.start + args.cases), args.seed, args.jobs, args.timeout, args.targets,
                         progress=_progress)
    print(runner.report(results, args.failures))
    print(f"{time.perf_counter() - start:.1f} s with {args.jobs} job(s)")
    return int(any(r["class"] in FAILURES for r in results))


if __name__ == "__main__":
    sys.exit(main())
