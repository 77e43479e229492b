"""Peak resident memory of the first training steps, fnnet side by side with PyTorch.

    python -m fnnet.bench --workload memory             # with the CNN process peak of the memory section
    python -m fnnet.bench.memory                        # this table alone (under a minute)
    python -m fnnet.bench.memory --quick                # tiny sizes (a smoke test; numbers meaningless)
    python -m fnnet.bench.memory --run fnnet act_mlp    # one process, prints one JSON line

Each (framework, workload) runs in a fresh process with the default allocator settings (what a user
gets: fnnet's own ``mallopt`` at import included).  It builds the model, params and data, loads every
kernel on a tiny copy of the model, then runs three training steps while a thread samples the resident
set size every 0.5 ms.  ``rss_growth_bytes`` holds, per step, the peak RSS during the step minus the RSS
just before the first step; ``peak_growth_bytes`` is their maximum: what the steps add on top of the
params and data.  The ratio is fnnet / PyTorch (below 1: fnnet holds less).

Workloads:

- ``act_mlp``: activation-dominated, 32 x (Linear(256), ReLU) then Linear(10), batch 2048, SGD.
- ``act_mlp_remat``: the same with ``Remat`` around 4 blocks of 8 pairs (``torch.utils.checkpoint``,
  non-reentrant, for PyTorch); ``remat_ratio`` is plain / remat per framework.
- ``weight_mlp``: weight-dominated, 8 x (Linear(2048), ReLU) then Linear(10) (128 MB of weights),
  batch 64, Adam, the optimizer state created inside the window (PyTorch creates it in the first
  ``step()``; fnnet's step calls ``init`` first).

fnnet's step is ``grad`` then ``opt.update_and_apply(grads, opt_state, params, donate=True)``; PyTorch's
``zero_grad(set_to_none=True)``, forward, backward, ``step()``.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys

FRAMEWORKS = ("fnnet", "torch")
WORKLOADS = ("act_mlp", "act_mlp_remat", "weight_mlp")
STEPS = 3
SAMPLE_INTERVAL_S = 5e-4
SIZES = {
    "act_mlp": {"width": 256, "depth": 32, "batch": 2048, "block_layers": 8},
    "weight_mlp": {"width": 2048, "depth": 8, "batch": 64, "block_layers": 1},
}
QUICK = {
    "act_mlp": {"width": 16, "depth": 4, "batch": 8, "block_layers": 2},
    "weight_mlp": {"width": 32, "depth": 2, "batch": 4, "block_layers": 1},
}
WARMUP = {"width": 8, "batch": 4}  # the tiny copy that loads the kernels before the window


def _spec(workload, quick):
    sizes = (QUICK if quick else SIZES)["weight_mlp" if workload == "weight_mlp" else "act_mlp"]
    return {**sizes, "remat": workload == "act_mlp_remat", "adam": workload == "weight_mlp"}


def _data(width, batch):
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.standard_normal((batch, width)).astype(np.float32), rng.integers(0, 10, size=batch).astype(np.int64)


# --------------------------------------------------------------------------------------------- steps
def fnnet_step(spec):
    """A zero-argument training step of the fnnet model for ``spec`` (state kept inside)."""
    import fnnet
    from fnnet.kernels._jit import KEEPS_FREED_MEMORY

    from .remat import mlp_model

    model = mlp_model(spec["width"], spec["depth"], spec["block_layers"], spec["remat"])
    x, y = _data(spec["width"], spec["batch"])
    opt = fnnet.optim.adam(1e-3) if spec["adam"] else fnnet.optim.sgd(0.01)
    box = {"params": model.init(fnnet.random.key(0), (None, spec["width"])), "opt": None}
    grad_fn = fnnet.grad(lambda p: fnnet.losses.softmax_cross_entropy(model.apply(p, x), y))

    def step():
        if box["opt"] is None:  # inside the window, as PyTorch's lazily created state
            box["opt"] = opt.init(box["params"])
        grads = grad_fn(box["params"])
        box["params"], box["opt"] = opt.update_and_apply(grads, box["opt"], box["params"], donate=True)

    step.extra = lambda: {"peak_tape_bytes": fnnet.last_tape_stats()["peak_residual_bytes"],
                          "param_bytes": fnnet.tree.nbytes(box["params"]),
                          "state_bytes": fnnet.tree.nbytes(box["opt"]),
                          "keeps_freed_memory": KEEPS_FREED_MEMORY}
    return step


def torch_step(spec):
    """The PyTorch twin of :func:`fnnet_step`."""
    import torch
    from torch.utils.checkpoint import checkpoint

    nn, width = torch.nn, spec["width"]
    per_block = spec["block_layers"] if spec["remat"] else spec["depth"]
    blocks = [nn.Sequential(*[m for _ in range(per_block) for m in (nn.Linear(width, width), nn.ReLU())])
              for _ in range(spec["depth"] // per_block)]
    head = nn.Linear(width, 10)
    model = nn.ModuleList([*blocks, head])
    x, y = (torch.from_numpy(a) for a in _data(width, spec["batch"]))
    opt = (torch.optim.Adam if spec["adam"] else torch.optim.SGD)(model.parameters(), lr=1e-3 if spec["adam"] else 0.01)
    loss_fn = nn.CrossEntropyLoss()

    def forward(h):
        for block in blocks:
            h = checkpoint(block, h, use_reentrant=False) if spec["remat"] else block(h)
        return head(h)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(forward(x), y).backward()
        opt.step()

    step.extra = lambda: {"param_bytes": sum(p.numel() * p.element_size() for p in model.parameters())}
    return step


STEP_BUILDERS = {"fnnet": fnnet_step, "torch": torch_step}


# ------------------------------------------------------------------------------------ one measurement
def run_one(framework, workload, *, quick=False, threads=2):
    """Measure one (framework, workload) in this process; see the module docstring for the fields."""
    from .remat import _rss_bytes, _RssSampler

    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
    spec = _spec(workload, quick)
    STEP_BUILDERS[framework]({**spec, **WARMUP})()  # loads the kernels: the same model, tiny
    step = STEP_BUILDERS[framework](spec)
    gc.collect()
    before = _rss_bytes()
    growth = []
    for _ in range(STEPS):
        with _RssSampler(SAMPLE_INTERVAL_S) as sampler:
            step()
        growth.append(None if before is None else sampler.peak - before)
    peak = None if None in growth else max(growth)
    return {"framework": framework, "workload": workload, "sizes": spec, "rss_growth_bytes": growth,
            "peak_growth_bytes": peak, **step.extra()}


# ------------------------------------------------------------------------------ fresh-process driver
def _spawn(framework, workload, quick, threads):
    from .measure import env

    cmd = [sys.executable, "-m", "fnnet.bench.memory", "--run", framework, workload, "--threads", str(threads)]
    proc = subprocess.run(cmd + (["--quick"] if quick else []), capture_output=True, text=True, env=env(threads))
    if proc.returncode != 0:
        raise RuntimeError(f"memory benchmark {framework}/{workload} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _ratio(a, b):
    return None if a is None or b is None or b <= 0 else a / b


def measure(quick=False, threads=2, frameworks=FRAMEWORKS):
    """Every workload in fresh processes, per framework.

    Returns:
        ``{"workloads": {workload: {framework: result, "ratio": fnnet / torch peak growth}},
        "remat_ratio": {framework: act_mlp / act_mlp_remat peak growth}, "steps": 3, "quick": bool}``.
    """
    rows = {}
    for workload in WORKLOADS:
        row = rows[workload] = {f: _spawn(f, workload, quick, threads) for f in frameworks}
        row["ratio"] = _ratio(*(row.get(f, {}).get("peak_growth_bytes") for f in FRAMEWORKS))
    remat = {f: _ratio(rows["act_mlp"][f]["peak_growth_bytes"], rows["act_mlp_remat"][f]["peak_growth_bytes"])
             for f in frameworks}
    return {"workloads": rows, "remat_ratio": remat, "steps": STEPS, "quick": quick}


def _mb(b):
    return "-" if b is None else f"{b / 2**20:.1f}"


def print_table(result):
    """One row per workload: peak RSS growth in MB per framework, and fnnet / PyTorch."""
    print(f"peak RSS growth over the first {result['steps']} steps, MB (sampled every 0.5 ms, fresh processes)")
    print(f"{'workload':<16}{'fnnet':>10}{'torch':>10}{'fnnet/torch':>13}")
    for workload, row in result["workloads"].items():
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        print(f"{workload:<16}{_mb(row.get('fnnet', {}).get('peak_growth_bytes')):>10}"
              f"{_mb(row.get('torch', {}).get('peak_growth_bytes')):>10}{ratio:>13}", flush=True)
    remat = ", ".join(f"{f} {r:.2f}x" for f, r in result["remat_ratio"].items() if r is not None)
    print(f"remat saving (act_mlp / act_mlp_remat): {remat}")


def run_all(quick=False, threads=2):
    """The ``first_steps`` part of ``python -m fnnet.bench --workload memory``."""
    import importlib.util

    frameworks = tuple(f for f in FRAMEWORKS if f == "fnnet" or importlib.util.find_spec(f) is not None)
    result = measure(quick=quick, threads=threads, frameworks=frameworks)
    print_table(result)
    return {"first_steps": result}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m fnnet.bench.memory", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", nargs=2, metavar=("FRAMEWORK", "WORKLOAD"), help="measure one in this process (JSON)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    args = p.parse_args(argv)
    if args.run is None:
        return run_all(quick=args.quick, threads=args.threads)
    framework, workload = args.run
    if framework not in FRAMEWORKS or workload not in WORKLOADS:
        p.error(f"--run takes a framework in {FRAMEWORKS} and a workload in {WORKLOADS}, got {args.run}")
    if framework == "fnnet":
        import numba

        import fnnet  # noqa: F401  (threading layer first)

        numba.set_num_threads(args.threads)
    result = run_one(framework, workload, quick=args.quick, threads=args.threads)
    print(json.dumps(result))
    sys.stdout.flush()
    return result


if __name__ == "__main__":
    main()
