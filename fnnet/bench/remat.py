"""Gradient checkpointing (``fnnet.layers.Remat``): memory and time of a training step, plain vs remat.

Each memory measurement runs in a fresh process (so RSS peaks are per process), and the step times of
both modes in one more, interleaved::

    python -m fnnet.bench --workload remat                          # the table (full size: minutes)
    python -m fnnet.bench.remat --mode remat --model mlp            # one process, prints one JSON line
    python -m fnnet.bench.remat --mode time --model mlp             # both modes' step times, one process
    python -m fnnet.bench.remat --quick                             # tiny sizes, both models (smoke test)

Reported per mode: ``peak_tape_bytes`` (``fnnet.last_tape_stats()``: every array the tape keeps, params
included, an array kept by two entries counted twice), ``param_bytes``, ``rss_growth_bytes`` (the median
over a few steps of the peak resident memory sampled during a step minus the resident memory just before it;
glibc is told to return freed blocks of 64 KiB and more to the system at once so the RSS follows the live
arrays) and ``step_ms`` (median training step: forward, backward, SGD update, timed with fnnet's own
allocator setting in a process that builds both modes and alternates between them for a few rounds).  The
RSS growth includes the gradients and the update, which are the same in both modes.  Ratios: ``memory`` =
plain / remat (higher is better), ``time`` = remat / plain per round, the median (the price of the extra
forward).

Models: the MLP is ``depth`` (Linear(width), ReLU) pairs grouped ``block_layers`` pairs per block, each
block wrapped in ``Remat``; with one pair per block the tape keeps one distinct activation per pair either
way (ReLU saves its output, which is the next Linear's saved input), so real savings need several pairs per
block (about sqrt(depth) is the classic choice).  The CNN is ``fnnet.bench.workloads.fnnet_model("cnn")``
with every conv block (Conv2D, ReLU, MaxPool2D) wrapped.  The plain variants have the same nesting, so both
use the same params.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import threading
import time

import numpy as np

MODES = ("plain", "remat")
MODELS = ("mlp", "cnn")
QUICK = {"mlp": {"width": 16, "depth": 4, "batch": 8, "block_layers": 2, "repeats": 1},
         "cnn": {"batch": 2, "repeats": 1}}


# ------------------------------------------------------------------------------------------------ models
def mlp_model(width, depth, block_layers=1, remat=False, classes=10):
    """``depth`` (Linear(width), ReLU) pairs in blocks of ``block_layers`` pairs (each wrapped in ``Remat``
    when ``remat``), then ``Linear(classes)``."""
    import fnnet.layers as L

    if depth % block_layers:
        raise ValueError(f"mlp_model: depth={depth} must be a multiple of block_layers={block_layers}")
    blocks = []
    for _ in range(depth // block_layers):
        block = L.Sequential([layer for _ in range(block_layers) for layer in (L.Linear(width), L.ReLU())])
        blocks.append(L.Remat(block) if remat else block)
    return L.Sequential([*blocks, L.Linear(classes)])


def cnn_model(remat=False):
    """The benchmark CNN with each Conv2D and the layers up to its MaxPool2D grouped in one block (wrapped in
    ``Remat`` when ``remat``)."""
    import fnnet.layers as L

    from .workloads import fnnet_model

    out, block = [], []
    for layer in fnnet_model("cnn").layers:
        if isinstance(layer, L.Conv2D) or block:
            block.append(layer)
            if isinstance(layer, L.MaxPool2D):
                seq = L.Sequential(block)
                out.append(L.Remat(seq) if remat else seq)
                block = []
        else:
            out.append(layer)
    return L.Sequential(out)


# ------------------------------------------------------------------------------------ one measurement
def _rss_bytes():
    """Current resident set size from /proc (None where unavailable)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class _RssSampler:
    """Samples the RSS in a thread while a block runs (kernels release the GIL); ``peak`` is the largest."""

    def __init__(self, interval=2e-4):
        self.interval = interval
        self.peak = _rss_bytes() or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes() or 0)
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes() or 0)


def _train_step(mode, model, width, depth, batch, block_layers):
    """``(step(), params)``: one SGD training step of the (mode, model) on fixed random data, in place."""
    import fnnet

    from .workloads import LR, SHAPES

    remat = {"plain": False, "remat": True}[mode]
    rng = np.random.default_rng(0)
    if model == "mlp":
        net = mlp_model(width, depth, block_layers, remat)
        in_shape = (width,)
    elif model == "cnn":
        net = cnn_model(remat)
        in_shape = SHAPES["cnn"]["in"]
    else:
        raise ValueError(f"run_one: model must be one of {MODELS}, got {model!r}")
    x = rng.standard_normal((batch, *in_shape)).astype(np.float32)
    y = rng.integers(0, 10, size=batch).astype(np.int64)
    params = net.init(fnnet.random.key(0), (None, *in_shape))
    state = net.init_state((None, *in_shape))
    opt = fnnet.optim.sgd(LR)
    step = fnnet.train.make_train_step(net, fnnet.losses.softmax_cross_entropy, opt)
    box = {"params": params, "state": state, "opt": opt.init(params)}
    key = fnnet.random.key(1)

    def train_step():
        box["params"], box["state"], box["opt"], _ = step(box["params"], box["state"], box["opt"], x, y, key)

    return train_step, params


def run_one(mode, model="mlp", *, width=1024, depth=16, batch=256, block_layers=1, rss_steps=5):
    """Memory of one (mode, model) in this process; see the module docstring for the fields returned."""
    import fnnet

    train_step, params = _train_step(mode, model, width, depth, batch, block_layers)
    train_step()  # compile / load kernels
    peak_tape = fnnet.last_tape_stats()["peak_residual_bytes"]
    growth = []
    for _ in range(rss_steps):  # per step: peak during the step minus the RSS just before it
        gc.collect()
        before = _rss_bytes()
        with _RssSampler() as sampler:
            train_step()
        growth.append(None if before is None else sampler.peak - before)
    return {
        "mode": mode, "model": model, "peak_tape_bytes": int(peak_tape),
        "param_bytes": fnnet.tree.nbytes(params),
        "rss_growth_bytes": None if None in growth else int(np.median(growth)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def time_both(model="mlp", *, width=1024, depth=16, batch=256, block_layers=1, repeats=3, rounds=5):
    """Step times of plain and remat in this one process, interleaved over ``rounds`` (so that a shared
    machine's drifts hit both alike): ``{"plain_ms", "remat_ms", "time_ratio", "time_ratio_range"}``,
    medians over the rounds, the ratio remat / plain per round."""
    from . import timing

    steps = {mode: _train_step(mode, model, width, depth, batch, block_layers)[0] for mode in MODES}
    quick = repeats <= 1
    times = {mode: [] for mode in MODES}
    for r in range(1 if quick else rounds):
        for mode, step in steps.items():
            warmup = (1 if quick else timing.WARMUP) if r == 0 else 0
            times[mode].append(timing.median_ms(step, warmup=warmup, repeats=repeats,
                                                min_time=0.0 if quick else 0.2))
    ratios = [b / a for a, b in zip(times["plain"], times["remat"])]
    return {"plain_ms": float(np.median(times["plain"])), "remat_ms": float(np.median(times["remat"])),
            "time_ratio": float(np.median(ratios)), "time_ratio_range": [min(ratios), max(ratios)]}


# ------------------------------------------------------------------------------ fresh-process driver
def _subprocess_env(threads, memory):
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = str(threads)
    if memory:  # return freed large blocks to the system at once, so the RSS follows the live arrays
        env.setdefault("MALLOC_MMAP_THRESHOLD_", "65536")
        env.setdefault("MALLOC_TRIM_THRESHOLD_", "0")
        env.setdefault("FNNET_KEEP_FREED_MEMORY", "0")  # fnnet's own allocator setting would override these
    return env


def _spawn(mode, model, sizes, threads):
    """``mode`` plain or remat: the memory of that mode; ``time``: both modes' step times (fnnet's own
    allocator setting, as a user's process runs; returning memory would fault every activation in again)."""
    cmd = [sys.executable, "-m", "fnnet.bench.remat", "--mode", mode, "--model", model]
    for name, value in sizes.items():
        if mode == "time" or name != "repeats":
            cmd += [f"--{name.replace('_', '-')}", str(value)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_subprocess_env(threads, mode != "time"))
    if proc.returncode != 0:
        raise RuntimeError(f"remat benchmark {mode}/{model} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _compare(model, sizes, threads):
    runs = {mode: _spawn(mode, model, sizes, threads) for mode in MODES}
    timed = _spawn("time", model, sizes, threads)
    for mode in MODES:
        runs[mode]["step_ms"] = timed[f"{mode}_ms"]
    plain, remat = runs["plain"], runs["remat"]

    def ratio(a, b):
        return None if a is None or b is None or b <= 0 else a / b

    def activation_tape(r):  # the tape's bytes beyond the params it references
        return max(r["peak_tape_bytes"] - r["param_bytes"], 0)

    return {
        **runs, "sizes": sizes,
        "tape_ratio": ratio(plain["peak_tape_bytes"], remat["peak_tape_bytes"]),
        "activation_tape_ratio": ratio(activation_tape(plain), activation_tape(remat)),
        "rss_ratio": ratio(plain["rss_growth_bytes"], remat["rss_growth_bytes"]),
        "time_ratio": timed["time_ratio"], "time_ratio_range": timed["time_ratio_range"],
    }


def measure(width=1024, depth=16, batch=256, repeats=3, block_layers=1, threads=2, rss_goal=None):
    """The MLP (see :func:`mlp_model`), plain and remat, each in a fresh process.

    Returns:
        ``{"plain": {...}, "remat": {...}, "sizes": {...}, "tape_ratio", "activation_tape_ratio",
        "rss_ratio", "time_ratio"}``; memory ratios are plain / remat, the time ratio remat / plain.
        ``rss_goal`` (``{"rss_ratio": at least, "time_ratio": at most}``) is stored with the row.
    """
    sizes = {"width": width, "depth": depth, "batch": batch, "block_layers": block_layers, "repeats": repeats}
    return {**_compare("mlp", sizes, threads), "rss_goal": rss_goal}


def measure_cnn(batch=64, repeats=3, threads=2, rss_goal=None):
    """The benchmark CNN with every conv block wrapped, plain and remat; returns like :func:`measure`."""
    return {**_compare("cnn", {"batch": batch, "repeats": repeats}, threads), "rss_goal": rss_goal}


#: Issue 16's goals on process memory: the activation-dominated MLP of ``fnnet.bench.memory`` (32 x 256,
#: 8 pairs per block, batch 2048) at least 2.5x less RSS growth with ``Remat`` at no more than 1.35x the
#: step time; the CNN's RSS growth lower with ``Remat`` than without (a ratio above 1).
ACT_MLP_GOAL = {"rss_ratio": 2.5, "time_ratio": 1.35}
CNN_GOAL = {"rss_ratio": 1.0}


def _mb(b):
    return "-" if b is None else f"{b / 2**20:.1f}"


def _x(r):
    return "-" if r is None else f"{r:.2f}x"


def print_table(results):
    """Print one row per measured model: memory (plain, remat, plain/remat) and step time (remat/plain)."""
    print(f"{'model':<22}{'tape MB':>16}{'ratio':>7}{'act.ratio':>10}{'RSS growth MB':>18}{'ratio':>7}"
          f"{'step ms':>18}{'time':>7}")
    for name, r in results.items():
        p, q = r["plain"], r["remat"]
        print(f"{name:<22}{_mb(p['peak_tape_bytes']):>8}{_mb(q['peak_tape_bytes']):>8}{_x(r['tape_ratio']):>7}"
              f"{_x(r['activation_tape_ratio']):>10}{_mb(p['rss_growth_bytes']):>9}{_mb(q['rss_growth_bytes']):>9}"
              f"{_x(r['rss_ratio']):>7}{p['step_ms']:>9.2f}{q['step_ms']:>9.2f}{_x(r['time_ratio']):>7}", flush=True)
    print("targets: memory (plain/remat) >= 2x at time (remat/plain) <= 1.4x")


def run_all(quick=False, threads=2):
    """The rows of ``python -m fnnet.bench --workload remat``."""
    if quick:
        results = {"mlp (quick)": measure(**QUICK["mlp"], threads=threads),
                   "cnn (quick)": measure_cnn(**QUICK["cnn"], threads=threads)}
    else:
        from .memory import SIZES

        results = {"mlp 16x1024, 1/block": measure(threads=threads),
                   "mlp 16x1024, 4/block": measure(block_layers=4, threads=threads),
                   "act_mlp 32x256, 8/block": measure(**SIZES["act_mlp"], threads=threads, rss_goal=ACT_MLP_GOAL),
                   "cnn, conv blocks": measure_cnn(threads=threads, rss_goal=CNN_GOAL)}
    print_table(results)
    return results


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m fnnet.bench.remat", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=(*MODES, "time"),
                   help="measure one mode's memory (or, with 'time', both modes' step times) in this process "
                        "and print JSON")
    p.add_argument("--model", choices=MODELS, default="mlp")
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--depth", type=int, default=16)
    p.add_argument("--batch", type=int, default=None, help="default: 256 (mlp), 64 (cnn)")
    p.add_argument("--block-layers", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="tiny sizes, both models (a smoke test)")
    args = p.parse_args(argv)
    if args.mode is None:
        return run_all(quick=args.quick)
    batch = args.batch or (256 if args.model == "mlp" else 64)
    sizes = {"width": args.width, "depth": args.depth, "batch": batch, "block_layers": args.block_layers}
    result = time_both(args.model, **sizes, repeats=args.repeats) if args.mode == "time" \
        else run_one(args.mode, args.model, **sizes)
    print(json.dumps(result))
    sys.stdout.flush()
    return result


if __name__ == "__main__":
    main()
