"""Data-parallel training on MPI (``fnnet.distributed``): all-reduce cost and a 2-rank training step.

    python -m fnnet.bench --workload distributed        # the table (launches mpiexec itself)
    python -m fnnet.bench.distributed --quick           # the same, few repetitions (a smoke test)
    mpiexec -n 2 python -m fnnet.bench.distributed --part allreduce   # one part; rank 0 prints JSON

Parts:

- ``allreduce``: ``fnnet.distributed.allreduce_mean`` of a float32 tree of 1M and 10M params (4 layers of
  weights and biases) against a raw ``mpi4py`` ``Allreduce`` of one float32 buffer of the same size; the
  deterministic mode too, and one copy of the tree into a fresh buffer (``copy``: what packing adds).
  Bandwidth is the bus bandwidth of a ring all-reduce, ``2 (N-1)/N * bytes / time``.
- ``step`` (2 ranks x 1 Numba thread): one ``mlp`` training step (``fnnet.bench.workloads``, SGD) with 64
  examples per rank (global batch 128) through ``make_train_step(..., distributed=...)``, with overlap, without
  it, and deterministic; plus the same step without any communication (``local``: what the ranks compute).
- ``single`` (1 process x 2 Numba threads): the plain step at batch 128, the same global batch.

Times are medians over repetitions of a fixed number of calls (every rank must make the same calls), in ms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

SIZES = (1_000_000, 10_000_000)
BATCH = 128


def _median_ms(fn, repeats, inner, sync=None):
    """Median over ``repeats`` of the mean time of ``inner`` calls (fixed counts, the same on every rank)."""
    fn()
    samples = []
    for _ in range(repeats):
        if sync is not None:
            sync()
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - start) / inner * 1e3)
    return statistics.median(samples)


def _tree(params):
    """A float32 tree of about ``params`` values: 4 layers of (rows, 1000) weights and 1000 biases."""
    rows = max(1, params // 4 // 1000 - 1)
    rng = np.random.default_rng(0)
    return {str(i): {"weight": rng.standard_normal((rows, 1000), dtype=np.float32),
                     "bias": rng.standard_normal(1000, dtype=np.float32)} for i in range(4)}


def run_allreduce(repeats):
    from mpi4py import MPI

    import fnnet
    import fnnet.distributed as dist

    dist.init()
    comm = dist.communicator()
    ranks = comm.Get_size()
    out = {}
    for size in SIZES:
        t = _tree(size)
        count = fnnet.tree.size(t)
        raw = np.concatenate([x.reshape(-1) for x in fnnet.tree.leaves(t)])
        inner = 5 if size <= 1_000_000 else 2
        row = {
            "params": count,
            "fnnet_ms": _median_ms(lambda: dist.allreduce_mean(t), repeats, inner, comm.Barrier),
            "deterministic_ms": _median_ms(lambda: dist.allreduce_mean(t, deterministic=True), repeats, inner,
                                           comm.Barrier),
            "raw_ms": _median_ms(lambda: comm.Allreduce(MPI.IN_PLACE, raw), repeats, inner, comm.Barrier),
            "copy_ms": _median_ms(lambda: np.concatenate([x.reshape(-1) for x in fnnet.tree.leaves(t)]), repeats,
                                  inner, comm.Barrier),
        }
        moved = 2 * (ranks - 1) / ranks * count * 4
        for name in ("fnnet", "deterministic", "raw"):
            row[f"{name}_gbs"] = moved / (row[f"{name}_ms"] * 1e-3) / 1e9
        row["ratio"] = row["fnnet_ms"] / row["raw_ms"]
        out[str(size)] = row
    return out


def _mlp_step(batch_slice, distributed, options=None):
    import fnnet

    from .workloads import LR, SHAPES, data, fnnet_model

    model = fnnet_model("mlp")
    x, y = data("mlp", BATCH)
    x, y = x[batch_slice], y[batch_slice]
    params = model.init(fnnet.random.key(0), (None, *SHAPES["mlp"]["in"]))
    opt = fnnet.optim.sgd(LR)
    step = fnnet.train.make_train_step(model, fnnet.losses.softmax_cross_entropy, opt,
                                       distributed=options if distributed else False)
    box = {"params": params, "state": {}, "opt": opt.init(params)}
    key = fnnet.random.key(1)

    def run():
        box["params"], box["state"], box["opt"], _ = step(box["params"], box["state"], box["opt"], x, y, key)

    return run


def run_step(repeats):
    import numba

    import fnnet.distributed as dist

    rank, ranks = dist.init()
    per = BATCH // ranks
    mine = slice(rank * per, (rank + 1) * per)
    comm = dist.communicator()
    steps = {
        "overlap": _mlp_step(mine, True, dist.DataParallel()),
        "no_overlap": _mlp_step(mine, True, dist.DataParallel(overlap=False)),
        "deterministic": _mlp_step(mine, True, dist.DataParallel(deterministic=True)),
        "local": _mlp_step(mine, False),
    }
    for run in steps.values():  # compile and first-step set-up before any timing
        run()
    times = {name: [] for name in steps}
    for _ in range(repeats):  # interleaved, so drifts of a shared machine hit every variant alike
        for name, run in steps.items():
            times[name].append(_median_ms(run, 1, 10, comm.Barrier))
    out = {f"{name}_ms": statistics.median(v) for name, v in times.items()}
    out["overlap_saving_ms"] = out["no_overlap_ms"] - out["overlap_ms"]
    return {**out, "ranks": ranks, "numba_threads": numba.get_num_threads()}


def run_single(repeats):
    step = _mlp_step(slice(0, BATCH), False)
    step()
    return {"single_ms": statistics.median(_median_ms(step, 1, 10) for _ in range(repeats))}


PARTS = {"allreduce": run_allreduce, "step": run_step, "single": run_single}


# ------------------------------------------------------------------------------------------- driver
def _launch(part, repeats, ranks, threads):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = str(threads)
    command = [sys.executable, "-m", "fnnet.bench.distributed", "--part", part, "--repeats", str(repeats)]
    if ranks:
        mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
        if mpiexec is None:
            raise RuntimeError("no mpiexec found: pip install 'fnnet[distributed]'")
        command = [mpiexec, "-n", str(ranks), *command]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"distributed benchmark part {part} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_all(quick=False, threads=2, repeats=7):
    """Every part in fresh processes; prints the tables and returns the results."""
    repeats = 2 if quick else repeats
    allreduce = _launch("allreduce", repeats, 2, 1)
    print(f"{'params':>10}{'fnnet ms':>10}{'GB/s':>7}{'determ. ms':>12}{'GB/s':>7}{'raw mpi4py ms':>15}{'GB/s':>7}"
          f"{'fnnet/raw':>11}{'copy ms':>9}")
    for row in allreduce.values():
        print(f"{row['params']:>10}{row['fnnet_ms']:>10.2f}{row['fnnet_gbs']:>7.2f}{row['deterministic_ms']:>12.2f}"
              f"{row['deterministic_gbs']:>7.2f}{row['raw_ms']:>15.2f}{row['raw_gbs']:>7.2f}{row['ratio']:>10.2f}x"
              f"{row['copy_ms']:>9.2f}", flush=True)
    step = _launch("step", repeats, 2, 1)
    single = _launch("single", repeats, 0, threads)
    print(f"mlp step, global batch {BATCH}: 2 ranks x 1 thread {step['overlap_ms']:.2f} ms (no overlap "
          f"{step['no_overlap_ms']:.2f}, deterministic {step['deterministic_ms']:.2f}, compute only "
          f"{step['local_ms']:.2f}); 1 process x {threads} threads {single['single_ms']:.2f} ms; overlap saves "
          f"{step['overlap_saving_ms']:.2f} ms", flush=True)
    return {"allreduce": allreduce, "step": {**step, **single}, "quick": quick}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m fnnet.bench.distributed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=sorted(PARTS), help="run one part in this process (under mpiexec)")
    p.add_argument("--repeats", type=int, default=7, help="repetitions of each timing (medians are reported)")
    p.add_argument("--quick", action="store_true", help="few repetitions (a smoke test; numbers meaningless)")
    args = p.parse_args(argv)
    if args.part is None:
        return run_all(quick=args.quick, repeats=args.repeats)
    result = PARTS[args.part](args.repeats)
    if args.part == "single" or _is_main():
        print(json.dumps(result), flush=True)
    return result


def _is_main():
    import fnnet.distributed as dist

    return dist.is_main()


if __name__ == "__main__":
    main()
