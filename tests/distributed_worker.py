"""Run by tests/test_distributed.py under ``mpiexec -n 2`` (or alone): ``python distributed_worker.py
SCENARIO OUT_DIR``.  Each rank writes what it computed to ``OUT_DIR/rank<r>.npz`` (arrays, by tree path)
and ``OUT_DIR/rank<r>.json`` (messages); the test compares them with references it computes itself from
the builders below, which both sides import.

Scenarios: ``collectives`` (all-reduce, broadcast, sharding, the tree-mismatch error, data-parallel steps
in three modes and a checkpoint), ``abort-raise`` / ``abort-kill`` (rank 1 fails at step 2), ``single``
(no mpiexec: the one-rank fallback).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections import namedtuple

import numpy as np

import fnnet
import fnnet.layers as L

RANKS, BATCH, STEPS, IN = 2, 6, 4, 5
Pair = namedtuple("Pair", ["first", "second"])


# ----------------------------------------------------------------------------------- shared builders
def tree_for_rank(rank):
    """A tree with float32/float64/float16 and int leaves whose values depend on the rank."""
    rng = np.random.default_rng(10 + rank)
    return {"w32": rng.standard_normal((3, 4)).astype(np.float32),
            "nested": [rng.standard_normal(7), rng.standard_normal((2, 3)).astype(np.float16)],
            "scalar": np.full((), rank + 0.25, np.float32),
            "count": np.arange(5, dtype=np.int64) * (rank + 1)}


def model(width=16, extra=False):
    """A model with Dropout and BatchNorm, so determinism covers random masks and running statistics."""
    layers = [L.Linear(width), L.BatchNorm(), L.ReLU(), L.Dropout(0.5), L.Linear(8), L.ReLU(), L.Linear(3)]
    return L.Sequential(layers + [L.ReLU(), L.Linear(3)] if extra else layers)


def initial(m):
    params = m.init(fnnet.random.key(0), (None, IN))
    opt = fnnet.optim.adam(1e-2)
    return params, m.init_state((None, IN)), opt, opt.init(params)


def batches():
    """``x (STEPS, RANKS, BATCH, IN)``, ``y (STEPS, RANKS, BATCH)``: rank r's batch at step t is x[t, r]."""
    rng = np.random.default_rng(0)
    return (rng.standard_normal((STEPS, RANKS, BATCH, IN)).astype(np.float32),
            rng.integers(0, 3, (STEPS, RANKS, BATCH)))


def step_key(t):
    return fnnet.random.key(100 + t)


def reference_step(m, opt, params, state, opt_state, xs, ys, key):
    """One process: ``accumulate_gradients`` over the ranks' batches as micro-batches (micro-batch r with
    ``fold_in(key, r)``), the updated states averaged with ``fnnet.optim.accumulate``, then the update."""
    def objective(p, s, x, y, k):
        out, new_state = m.apply(p, x, state=s, key=k, train=True)
        return fnnet.losses.softmax_cross_entropy(out, y), new_state

    value_and_grad = fnnet.value_and_grad(objective, has_aux=True)
    states = []

    def grad_fn(p, batch):
        (_, new_state), g = value_and_grad(p, state, *batch)
        states.append(new_state)
        return g

    micro = [(xs[r], ys[r], fnnet.random.fold_in(key, r)) for r in range(len(xs))]
    grads = fnnet.optim.accumulate_gradients(grad_fn, params, micro)
    updates, opt_state = opt.update(grads, opt_state, params)
    return fnnet.optim.apply_updates(params, updates), fnnet.optim.accumulate(states), opt_state


# ------------------------------------------------------------------------------------------ scenarios
def _flat(prefix, t):
    return {f"{prefix}/{p}": np.asarray(x) for p, x in zip(fnnet.tree.paths(t), fnnet.tree.leaves(t))}


def _record_overlap(dist, arrays, name):
    """Make every GradientReducer record, per step, how many buckets it had started before the backward
    reported its last gradient, and how many buckets there are (``name/sent_during_backward``)."""
    cls = dist.GradientReducer
    saved = cls.on_gradient, cls.finish
    rows = arrays.setdefault(f"{name}/sent_during_backward", [])

    def on_gradient(self, i, g):
        saved[0](self, i, g)
        self.launched_after_report = getattr(self, "launched_after_report", []) + [self.launched]

    def finish(self, grads):
        reports = getattr(self, "launched_after_report", [])
        rows.append((reports[-2] if len(reports) > 1 and self.buffers else 0,
                     -1 if self.buffers is None else len(self.buffers)))
        self.launched_after_report = []
        return saved[1](self, grads)

    cls.on_gradient, cls.finish = on_gradient, finish
    return saved


def _train(dist, options, rank, arrays, name, checkpoint=None):
    saved = _record_overlap(dist, arrays, name)
    try:
        _train_steps(dist, options, rank, arrays, name, checkpoint)
    finally:
        dist.GradientReducer.on_gradient, dist.GradientReducer.finish = saved
    arrays[f"{name}/sent_during_backward"] = np.array(arrays[f"{name}/sent_during_backward"])


def _train_steps(dist, options, rank, arrays, name, checkpoint):
    m = model()
    params, state, opt, opt_state = initial(m)
    step = fnnet.train.make_train_step(m, fnnet.losses.softmax_cross_entropy, opt, distributed=options)
    x, y = batches()
    for t in range(STEPS):
        if t == STEPS - 1 and checkpoint and dist.is_main():
            fnnet.io.save(checkpoint, params, state=state, opt_state=opt_state, config=m)
        params, state, opt_state, metrics = step(params, state, opt_state, x[t, rank], y[t, rank], step_key(t))
        arrays[f"{name}/loss/{t}"] = np.array(metrics["loss"])
        arrays.update(_flat(f"{name}/params/{t}", params))
        arrays.update(_flat(f"{name}/state/{t}", state))


def _mismatch(dist, rank, messages):
    for name, m in (("shape", model(17 if rank == 1 else 16)), ("structure", model(extra=rank == 1))):
        params, state, opt, opt_state = initial(m)
        step = fnnet.train.make_train_step(m, fnnet.losses.softmax_cross_entropy, opt, distributed=True)
        x, y = batches()
        try:
            step(params, state, opt_state, x[0, rank], y[0, rank], step_key(0))
        except ValueError as error:
            messages[f"mismatch_{name}"] = str(error)


def collectives(dist, out):
    rank, size = dist.init()
    arrays, messages = {"size": np.array(size)}, {}
    t = tree_for_rank(rank)
    floats = {k: v for k, v in t.items() if k != "count"}
    for deterministic in (False, True):
        arrays.update(_flat(f"sum/{deterministic}", dist.allreduce_sum(t, deterministic=deterministic)))
        arrays.update(_flat(f"mean/{deterministic}", dist.allreduce_mean(floats, deterministic=deterministic)))
    first = dist.allreduce_sum(t)
    kept = fnnet.tree.map(np.copy, first)
    dist.allreduce_sum(fnnet.tree.map(lambda x: np.asarray(x * 3), t))  # may reuse buffers, but never those `first` holds
    messages["kept_results_intact"] = all(np.array_equal(a, b) for a, b in
                                          zip(fnnet.tree.leaves(first), fnnet.tree.leaves(kept)))
    chunk_bytes, dist._collectives.CHUNK_BYTES = dist._collectives.CHUNK_BYTES, 12  # leaves span chunks
    try:
        arrays.update(_flat("sum/chunked", dist.allreduce_sum(t)))
        arrays.update(_flat("mean/chunked", dist.allreduce_mean(floats)))
    finally:
        dist._collectives.CHUNK_BYTES = chunk_bytes
    sent = Pair(t, {"step": 7, "name": "rank1"}) if rank == 1 else None
    received = dist.broadcast(sent, root=1)
    arrays.update(_flat("broadcast", received.first))
    messages["broadcast_rest"] = [type(received).__name__, received.second]
    arrays["shard"] = dist.shard(fnnet.random.key(3), 11)
    dist.barrier()
    _mismatch(dist, rank, messages)
    options = {"det_overlap": dist.DataParallel(deterministic=True, bucket_bytes=256),
               "det_serial": dist.DataParallel(deterministic=True, overlap=False),
               "mpi_overlap": dist.DataParallel(bucket_bytes=256)}
    for name, option in options.items():
        _train(dist, option, rank, arrays, name, os.path.join(out, "ckpt.npz") if name == "det_overlap" else None)
    return arrays, messages


def abort(dist, out, how):
    rank, _ = dist.init()
    m = model()
    params, state, opt, opt_state = initial(m)
    step = fnnet.train.make_train_step(m, fnnet.losses.softmax_cross_entropy, opt, distributed=True)
    x, y = batches()
    for t in range(STEPS):
        if rank == 1 and t == 2:
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("rank 1 fails on purpose at step 2")
        params, state, opt_state, _ = step(params, state, opt_state, x[t, rank], y[t, rank], step_key(t))
    print(f"rank {rank} finished", flush=True)
    return {}, {}


def single(dist, out):
    rank, size = dist.init()
    arrays = {"rank": np.array(rank), "size": np.array(size), "shard": dist.shard(fnnet.random.key(3), 11)}
    floats = {k: v for k, v in tree_for_rank(0).items() if k != "count"}
    arrays.update(_flat("mean", dist.allreduce_mean(floats, deterministic=True)))
    _train(dist, dist.DataParallel(deterministic=True), 0, arrays, "det")
    return arrays, {"is_main": dist.is_main()}


def main(scenario, out):
    import fnnet.distributed as dist

    if scenario.startswith("abort"):
        arrays, messages = abort(dist, out, scenario.split("-")[1])
    else:
        arrays, messages = {"collectives": collectives, "single": single}[scenario](dist, out)
    rank = dist.rank()
    np.savez(os.path.join(out, f"rank{rank}.npz"), **arrays)
    with open(os.path.join(out, f"rank{rank}.json"), "w") as fh:
        json.dump(messages, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
