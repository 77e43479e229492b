"""``python -m fnnet.precompile``: warm the kernel cache for every built-in layer and op, in parallel.

The signatures come from ``fnnet/kernels/manifest.json`` (float32, and the float16 conversions mixed
precision uses), which ``tests/tools/make_kernel_manifest.py`` writes by recording what exercising every
built-in layer, op, loss and optimizer calls.  Signatures already in the cache are skipped; the rest are
dealt to worker processes, one per CPU.  A progress line goes to stderr, a summary to stdout.

``--worker`` (internal) turns the process into a worker of ``fnnet.precompile``: it reads JSON jobs on
stdin (see ``_workers.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .. import kernels
from ._function import _needs_compiling
from ._workers import compile_in_workers, serve

MANIFEST = os.path.join(os.path.dirname(os.path.abspath(kernels.__file__)), "manifest.json")


def read_manifest(path=MANIFEST):
    """The manifest's entries: dicts with ``kernel``, ``signature`` and ``dtype``."""
    with open(path) as fh:
        return json.load(fh)["kernels"]


def warm(workers, path=MANIFEST):
    """Compile every manifest signature missing from the cache; returns the number that failed."""
    began = time.perf_counter()
    entries = read_manifest(path)
    missing = [entry for entry in entries if _needs_compiling(entry)]
    result = compile_in_workers(missing, workers, label="warming the kernel cache")
    for entry, error in result["failed"]:
        print(f"fnnet: could not compile {entry['kernel']}{entry['signature']}: {error}", file=sys.stderr)
    processes = min(workers, len(missing))
    print(f"fnnet: {len(entries)} kernel signatures: {result['compiled']} compiled, "
          f"{len(entries) - len(missing) + result['loaded']} already cached, {len(result['failed'])} failed; "
          f"{time.perf_counter() - began:.1f} s" + (f" in {processes} worker processes" if processes else ""))
    return len(result["failed"])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fnnet.precompile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes (default: CPUs)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        serve(sys.stdin, sys.stdout)
        return 0
    if not kernels.CACHE_ENABLED:
        parser.error("the kernel cache is off (FNNET_DISABLE_CACHE, or no writable cache folder): nothing to warm")
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    return 1 if warm(args.workers) else 0


if __name__ == "__main__":
    sys.exit(main())
