"""Peak resident memory of the mixed-precision step on the activation-dominated MLP, against float32.

    python -m fnnet.bench.memory_half                  # float32 and float16 rows, fresh processes
    python -m fnnet.bench.memory_half --quick          # tiny sizes (a smoke test; numbers meaningless)
    python -m fnnet.bench.memory_half --run act_mlp    # the float16 row in this process (one JSON line)

The float16 row is :mod:`fnnet.bench.memory`'s ``act_mlp`` (32 x (Linear(256), ReLU), Linear(10), batch
2048, SGD), measured the same way (fresh process, kernels loaded on a tiny copy, three steps, RSS sampled
every 0.5 ms), with the step of :func:`fnnet.precision.make_mixed_precision_train_step`: float32 master
params, float16 params, activations, residuals and gradients inside the step.  It runs with ``jit=False``
and ``donate=True``, as the float32 row runs ``grad`` eagerly and donates to ``update_and_apply`` (a
jitted step's first call is its trace, which keeps every value of the step alive until it returns).
``ratio`` is float16 / float32 peak RSS growth.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from . import memory

WORKLOADS = ("act_mlp",)


def fnnet16_step(spec):
    """A zero-argument mixed-precision training step of :func:`fnnet.bench.memory.fnnet_step`'s model."""
    import fnnet
    import fnnet.precision as precision

    from .remat import mlp_model

    model = mlp_model(spec["width"], spec["depth"], spec["block_layers"], spec["remat"])
    x, y = memory._data(spec["width"], spec["batch"])
    opt = fnnet.optim.adam(1e-3) if spec["adam"] else fnnet.optim.sgd(0.01)
    step = precision.make_mixed_precision_train_step(model, fnnet.losses.softmax_cross_entropy, opt, jit=False,
                                                   donate=True)
    box = {"params": model.init(fnnet.random.key(0), (None, spec["width"])), "opt": None}
    key = fnnet.random.key(1)

    def run():
        if box["opt"] is None:  # inside the window, as fnnet_step's
            box["opt"] = step.init(box["params"])
        box["params"], _, box["opt"], _ = step(box["params"], {}, box["opt"], x, y, key)

    run.extra = lambda: {"peak_tape_bytes": fnnet.last_tape_stats()["peak_residual_bytes"],
                         "param_bytes": fnnet.tree.nbytes(box["params"]), "precision": "float16"}
    return run


def measure(quick=False, threads=2):
    """``{workload: {"float32": result, "float16": result, "ratio": float16 / float32 peak growth}}``, each
    result from a fresh process (see :func:`fnnet.bench.memory.run_one` for its fields)."""
    from .measure import env

    rows = {}
    for workload in WORKLOADS:
        float32 = memory._spawn("fnnet", workload, quick, threads)
        cmd = [sys.executable, "-m", "fnnet.bench.memory_half", "--run", workload, "--threads", str(threads)]
        proc = subprocess.run(cmd + (["--quick"] if quick else []), capture_output=True, text=True,
                              env=env(threads))
        if proc.returncode != 0:
            raise RuntimeError(f"memory_half benchmark {workload} failed:\n{proc.stderr[-3000:]}")
        float16 = json.loads(proc.stdout.strip().splitlines()[-1])
        rows[workload] = {"float32": float32, "float16": float16,
                          "ratio": memory._ratio(float16["peak_growth_bytes"], float32["peak_growth_bytes"])}
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m fnnet.bench.memory_half", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", metavar="WORKLOAD", choices=WORKLOADS, help="the float16 row in this process (JSON)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    args = p.parse_args(argv)
    if args.run is None:
        rows = measure(quick=args.quick, threads=args.threads)
        for workload, row in rows.items():
            ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
            print(f"{workload:<10} peak RSS growth: float32 {memory._mb(row['float32']['peak_growth_bytes'])} MB   "
                  f"float16 {memory._mb(row['float16']['peak_growth_bytes'])} MB   float16/float32 {ratio}")
        return rows
    import numba

    import fnnet  # noqa: F401  (threading layer first)

    numba.set_num_threads(args.threads)
    builders = {**memory.STEP_BUILDERS, "fnnet16": fnnet16_step}  # run_one looks its builder up by name
    result = _run_one(builders, args.run, args.quick)
    print(json.dumps(result))
    sys.stdout.flush()
    return result


def _run_one(builders, workload, quick):
    """:func:`fnnet.bench.memory.run_one` for the ``fnnet16`` builder."""
    saved = dict(memory.STEP_BUILDERS)
    memory.STEP_BUILDERS.update(builders)
    try:
        return {**memory.run_one("fnnet16", workload, quick=quick), "framework": "fnnet16"}
    finally:
        memory.STEP_BUILDERS.clear()
        memory.STEP_BUILDERS.update(saved)


if __name__ == "__main__":
    main()
