"""The digits CNN's first training step with an empty kernel cache: ``python tests/tools/cold_first_step.py``.

Times, in a fresh process with a new empty ``NUMBA_CACHE_DIR``, importing fnnet and running the first
``make_train_step`` step (Adam) of ``fnnet.examples.digits``' model on a batch of 64 8x8 images, and lists
the kernels whose compiles took longest (each kernel's outermost compile, nested helpers included).  Set
Numba's variables in the environment to try them (e.g. ``NUMBA_OPT=1``).  A developer tool for the cold
start; not part of the test suite (it compiles everything from scratch, 1-2 minutes on 2 cores).
"""

from __future__ import annotations

import os
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


if __name__ == "__main__":
    main(*map(int, sys.argv[1:]))
