"""The layer form, ``precompile(model, in_shape)``: exercise every leaf layer on a batch of two.

For every leaf layer of the model (one per layer type and input rank), a forward and backward pass on a
batch of two in training mode and a forward in evaluation mode, plus the loss and the optimizer update
when given, so every kernel a training loop will call is compiled (or loaded from the cache) up front.
With an empty cache the layers are shared out between worker processes, one per core, which compile in
parallel into the on-disk cache; the calling process then loads the results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from .. import kernels
from .. import layers as L
from .. import ops
from .. import random as fnrandom
from .. import tree
from ..autodiff import grad
from ..layers.walking import is_leaf, walk

__all__ = ["precompile_layers", "compile_layers", "exercise"]


def _leaf_layers(model, in_shape):
    """(layer, in_shape) for every leaf layer, in order.  What containers compute themselves (the sum of
    ``Residual``) is compiled by the final pass over the whole model."""
    return [(layer, shape) for _, layer, shape in walk(model, in_shape) if is_leaf(layer)]


def _concrete(shape, batch=2):
    if shape and isinstance(shape[0], (tuple, list)):
        return tuple(_concrete(s, batch) for s in shape)
    return tuple(batch if (i == 0 and s is None) else s for i, s in enumerate(shape))


def _takes_indices(layer, shape):
    """The first layer to read the input takes integer indices (``Embedding``)."""
    first = next((leaf for _, leaf, _ in walk(layer) if is_leaf(leaf)), None)
    return getattr(first, "integer_input", False)


def _example(layer, shape, dtype):
    if isinstance(shape[0], tuple):
        return tuple(np.ones(s, dtype) for s in shape)
    if _takes_indices(layer, shape):
        return np.zeros(shape, np.int64)
    return np.linspace(-1.0, 1.0, int(np.prod(shape)), dtype=dtype).reshape(shape)


def exercise(layer, shape, dtype):
    """Forward + backward in training mode, and a forward in evaluation mode, on tiny inputs."""
    shape = _concrete(shape)
    key = fnrandom.key(0)
    params = layer.init(key, shape, dtype)
    state = layer.init_state(shape, dtype) if layer.has_state else None
    x = _example(layer, shape, dtype)

    def run(p, xv, train):
        if state is None:
            return layer.apply(p, xv, key=key, train=train)
        return layer.apply(p, xv, state=state, key=key, train=train)[0]

    def loss(p, xv):
        y = run(p, xv, True)
        ys = y if isinstance(y, tuple) else (y,)
        total = ops.sum(ys[0])
        for extra in ys[1:]:
            total = total + ops.sum(extra)
        return total

    differentiable_x = not _takes_indices(layer, shape)
    grad(loss, argnums=(0, 1) if differentiable_x else 0)(params, x)
    run(params, x, False)


def compile_layers(configs, dtype):
    """A worker's layer job: exercise each ``(config, in_shape)`` in ``dtype``."""
    for config, shape in configs:
        exercise(L.from_config(config), _as_tuple(shape), np.dtype(dtype).type)


def _as_tuple(shape):
    if isinstance(shape, list):
        return tuple(_as_tuple(s) for s in shape)
    return shape


def _portable(layer):
    """True when a child process can rebuild ``layer`` from its config (built-in layers only)."""
    return type(layer).__module__.startswith("fnnet.layers")


def precompile_layers(model, in_shape, *, dtype=np.float32, num_classes=None, optimizer=None, workers=None):
    """Compile (or load from the cache) every kernel a training loop over ``model`` will call.

    Args:
        model: a layer.
        in_shape: the input shape (batch entry may be None) or an example array.
        dtype: the float dtype of params and inputs.
        num_classes: also compile ``fnnet.losses.softmax_cross_entropy`` for this many classes.
        optimizer: also compile one update of this ``fnnet.optim`` transformation.
        workers: processes compiling in parallel (default: the number of CPUs, 1 when the on-disk cache
            is disabled, since compiled code could not be shared back).

    Returns:
        The number of leaf layers exercised.
    """
    multi = isinstance(in_shape, (tuple, list)) and bool(in_shape) and isinstance(in_shape[0], (tuple, list))
    in_shape = in_shape if multi else L.base.as_shape(in_shape, "fnnet.precompile")
    leaves = _leaf_layers(model, in_shape)
    if workers is None:
        workers = os.cpu_count() or 1
    if not kernels.CACHE_ENABLED:
        workers = 1
    # Kernels are compiled per signature, not per shape: one layer of each type compiles them all.
    unique = {}
    for layer, shape in leaves:
        unique.setdefault((type(layer), _ndim(shape)), (layer, shape))
    # Heaviest first (convolutions compile several large kernels), dealt round-robin to the processes.
    jobs = sorted(unique.values(), key=lambda item: -getattr(item[0], "compile_cost", 1))
    procs = []
    if workers > 1 and len(jobs) > 1:
        shares = [jobs[i::workers] for i in range(workers)]
        for share in shares[1:]:
            portable = [(layer, shape) for layer, shape in share if _portable(layer)]
            if not portable:
                continue
            payload = json.dumps({"dtype": np.dtype(dtype).name,
                                  "layers": [[L.to_config(layer), shape] for layer, shape in portable]})
            proc = subprocess.Popen([sys.executable, "-m", "fnnet.precompile", "--worker"], stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                    env={**os.environ, "FNNET_QUIET_COMPILE": "1"})
            proc.stdin.write(payload)
            proc.stdin.close()
            procs.append(proc)
        jobs = shares[0] + [item for share in shares[1:] for item in share if not _portable(item[0])]
    for layer, shape in jobs:  # this process's share, while the workers compile theirs
        exercise(layer, shape, dtype)
    _loss_and_optimizer(model, in_shape, dtype, num_classes, optimizer)
    for proc in procs:
        err = proc.stderr.read()
        if proc.wait() != 0:
            raise RuntimeError(f"fnnet.precompile: a worker process failed:\n{err[-2000:]}")
    # The whole model once, as training runs it (fused paths included); the workers' kernels load from
    # the cache here.
    exercise(model, in_shape, dtype)
    return len(leaves)


def _ndim(shape):
    return tuple(len(s) for s in shape) if shape and isinstance(shape[0], tuple) else len(shape)


def _loss_and_optimizer(model, in_shape, dtype, num_classes, optimizer):
    out_shape = _concrete(model.out_shape(in_shape))
    if num_classes is not None:
        from .. import losses

        logits = np.zeros(out_shape, dtype)
        grad(lambda z: losses.softmax_cross_entropy(z, np.zeros(out_shape[0], np.int64)))(logits)
    if optimizer is not None:
        params = model.init(fnrandom.key(0), _concrete(in_shape), dtype)
        state = optimizer.init(params)
        optimizer.update(tree.zeros_like(params), state, params)
        if np.dtype(dtype) in (np.float32, np.float64):  # make_train_step's finite check of loss and gradients
            kernels.all_finite(np.zeros(1, dtype))
