"""The digits CNN's first training step with an empty kernel cache: ``python tests/tools/cold_first_step.py``.

Times, in a fresh process with a new empty ``NUMBA_CACHE_DIR``, importing fnnet and running the first
``make_train_step`` step (Adam) of ``fnnet.examples.digits``' model on a batch of 64 8x8 images, and lists
the kernels whose compiles took longest (each kernel's outermost compile, nested helpers included).  Set
Numba's variables in the environment to try them (e.g. ``NUMBA_OPT=1``).  A developer tool for the cold
start; not part of the test suite (it compiles everything from scratch, 1-2 minutes on 2 cores).

``python tests/tools/cold_first_step.py --all-serial`` runs the same step on a temporary copy of the
package whose ``kernel`` decorator compiles every kernel without ``prange`` parallelism (the step is then
slower, its results the same): what the cold start would be if no kernel paid for Numba's parallel
lowering.  With ``NUMBA_OPT=0`` as well, it measures what Numba's front end alone costs for these kernels.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

import _compile_log  # tests/tools: the script's own folder


def main(top: int = 12) -> None:
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="fnnet-cold-")
    started = time.perf_counter()
    compiles = []  # (seconds, file.function) of each outermost compile

    def on_end(name, seconds, enclosing):
        if not enclosing:
            compiles.append((seconds, name.split(".", 2)[-1] if name.startswith("fnnet.") else name))

    _compile_log.listen(on_end)
    import numpy as np

    import fnnet
    from fnnet.examples.digits import build_model

    imported = time.perf_counter()
    model = build_model(8)
    params, state = model.init(fnnet.random.key(0), (None, 1, 8, 8)), model.init_state((None, 1, 8, 8))
    optimizer = fnnet.optim.adam(1e-3)
    step = fnnet.train.make_train_step(model, fnnet.losses.softmax_cross_entropy, optimizer)
    x = np.random.default_rng(0).standard_normal((64, 1, 8, 8)).astype(np.float32)
    step(params, state, optimizer.init(params), x, np.arange(64) % 10, fnnet.random.key(1))
    done = time.perf_counter()
    print(f"import {imported - started:.1f} s, first step {done - imported:.1f} s, total {done - started:.1f} s; "
          f"{len(compiles)} kernels compiled in {sum(s for s, _ in compiles):.1f} s, the longest:")
    for seconds, name in sorted(compiles, reverse=True)[:top]:
        print(f"  {seconds:6.2f} s  {name}")


def all_serial(args) -> None:
    """Run this tool on a copy of fnnet whose kernels all compile with ``parallel=False``."""
    import fnnet

    here = os.path.dirname(os.path.abspath(fnnet.__file__))
    with tempfile.TemporaryDirectory(prefix="fnnet-serial-") as root:
        shutil.copytree(here, os.path.join(root, "fnnet"), ignore=shutil.ignore_patterns("__pycache__"))
        jit = os.path.join(root, "fnnet", "kernels", "_jit.py")
        with open(jit) as fh:
            source = fh.read()
        parallel = "options = dict(parallel=_PRANGE_ONLY if parallel else False,"
        if parallel not in source:
            sys.exit("kernels/_jit.py no longer reads as this tool expects; update all_serial()")
        with open(jit, "w") as fh:
            fh.write(source.replace(parallel, "options = dict(parallel=False,"))
        env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
        subprocess.run([sys.executable, os.path.abspath(__file__), *args], env=env, check=True)


if __name__ == "__main__":
    if "--all-serial" in sys.argv:
        all_serial([a for a in sys.argv[1:] if a != "--all-serial"])
    else:
        main(*map(int, sys.argv[1:]))
