"""A small, functional training loop: everything goes in as arguments and comes back as results.

Nothing here hides params, state or optimizer state; the helpers only save the boilerplate of batching,
``value_and_grad`` and the optimizer update::

    step = fnnet.train.make_train_step(model, fnnet.losses.softmax_cross_entropy, opt)
    for epoch in range(epochs):
        key, epoch_key = fnnet.random.split(key)
        params, state, opt_state, metrics = fnnet.train.run_epoch(
            step, params, state, opt_state, x_train, y_train, epoch_key, batch_size=64)
        print(epoch, metrics, fnnet.train.evaluate(model, params, state, x_test, y_test))
"""

from __future__ import annotations

import numpy as np

from . import datasets, optim
from . import kernels as K
from . import distributed as dist
from . import random as fnrandom
from . import tree
from .autodiff import recording, value_and_grad
from .jit import jit as jit_function

__all__ = ["make_train_step", "data_parallel_step", "run_epoch", "predict", "evaluate", "accuracy", "NonFiniteError"]


class NonFiniteError(FloatingPointError):
    """A training step produced a NaN or infinite loss or gradient (raised before the update is applied)."""


def _is_finite(a) -> bool:
    """True when every element of ``a`` is finite: one vectorised pass (``kernels.all_finite``) for float32
    and float64 arrays, NumPy for other float dtypes."""
    a = np.asarray(a)
    if a.dtype.kind != "f":
        return True
    if a.dtype in (np.float32, np.float64):
        return bool(K.all_finite(np.ascontiguousarray(a).reshape(-1)))
    return bool(np.isfinite(a).all())


def check_finite_step(loss, grads) -> None:
    """Raise :class:`NonFiniteError` naming the loss, or the first gradient path, that is NaN or infinite."""
    if not _is_finite(loss):
        raise NonFiniteError(
            f"train step: the loss is {float(np.asarray(loss))}; the update was not applied.  Look for a NaN or "
            "inf in the batch, a log of 0, or a learning rate that is too large (fnnet.check_finite() names the "
            "first op that produced it); pass check_finite=False to make_train_step to train on regardless"
        )
    leaves = tree.leaves(grads)
    for i, g in enumerate(leaves):
        if not _is_finite(g):
            path = tree.paths(grads)[i]  # (named only on failure: the paths cost a tree walk per step)
            g = np.asarray(g)
            raise NonFiniteError(
                f"train step: the gradient of the param {path!r} has {int(np.isnan(g).sum())} NaN and "
                f"{int(np.isinf(g).sum())} inf value(s) while the loss is finite ({float(np.asarray(loss))}); the "
                "update was not applied.  Run the step inside fnnet.check_finite() to find the op that produced "
                "it; pass check_finite=False to make_train_step to train on regardless"
            )


# Under jit a replay tests the loss and gradient leaves directly and names the bad one only on failure.
check_finite_step.fnnet_quick_check = lambda *leaves: all(_is_finite(x) for x in leaves)


def accuracy(logits, labels) -> float:
    """Fraction of rows of ``logits (N, classes)`` whose argmax equals ``labels (N,)``."""
    logits = np.asarray(logits)
    if len(labels) == 0:
        return float("nan")
    if logits.ndim == 0 or logits.shape[-1] == 0:
        raise ValueError(f"accuracy: logits expected a last axis of at least 1 class, got shape {logits.shape}")
    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(labels)))


def _forward(model, params, state, x, key, train):
    """``(y, new_state)`` for stateful and stateless models alike."""
    if model.has_state:
        return model.apply(params, x, state=state, key=key, train=train)
    return model.apply(params, x, key=key, train=train), state


def _objective(model, loss_fn):
    """``objective(params, state, x, y, key) -> (loss, (new_state, outputs))`` in training mode."""

    def objective(params, state, x, y, key):
        out, new_state = _forward(model, params, state, x, key, True)
        return loss_fn(out, y), (new_state, out)

    return objective


def _metrics(loss, out, y) -> dict:
    metrics = {"loss": float(loss)}
    if np.asarray(y).dtype.kind in "iu":
        metrics["accuracy"] = accuracy(out, y)
    return metrics


def make_train_step(model, loss_fn, optimizer, *, check_finite=True, distributed=False, jit=True, donate=False):
    """Build ``step(params, state, opt_state, x, y, key) -> (params, state, opt_state, metrics)``.

    Args:
        model: a layer (usually a ``Sequential``).
        loss_fn: ``loss_fn(outputs, y) -> scalar``, e.g. ``fnnet.losses.softmax_cross_entropy``.
        optimizer: an ``fnnet.optim`` gradient transformation.
        check_finite: when True (the default), a NaN or infinite loss or gradient raises
            :class:`NonFiniteError` on the step where it first appears, before the update, so a diverging
            run is never silent.  Costs one summing pass over the gradients.
        distributed: ``True`` or a ``fnnet.distributed.DataParallel`` (options) for data-parallel training
            on the MPI ranks: each rank passes its own ``x``, ``y`` (e.g. from ``fnnet.distributed.shard``)
            and the same ``key``; gradients, BatchNorm running statistics and metrics are averaged over the
            ranks (see :func:`data_parallel_step`).
        jit: when True (the default), the forward, backward and update run through :func:`fnnet.jit`:
            traced on the first call for each batch shape, replayed afterwards, bitwise the same results.
            False runs them eagerly (the loss function may then read values in Python).  Ignored with
            ``distributed`` (its gradient exchange runs during the backward).
        donate: give up the ``params`` and ``opt_state`` passed to each call: the update writes the new
            params and optimizer moments into their buffers (``GradientTransformation.update_and_apply``),
            so a step holds params + gradients + optimizer state and nothing more (under ``jit``, through
            its ``donate_argnums``).  Results are bitwise the same; passing a donated array to the step or
            to ``fnnet.optim`` again raises a ValueError.

    Raises:
        NonFiniteError: see ``check_finite``.
        TypeError: ``distributed`` is neither a bool nor a ``DataParallel``.

    ``metrics`` holds the batch ``loss`` and ``accuracy`` (argmax of the outputs against integer ``y``).
    ``state`` is the model state tree (``{}``-like for stateless models) and is returned updated.
    """

    if distributed is not False:
        return data_parallel_step(model, loss_fn, optimizer, check_finite=check_finite, options=distributed)
    loss_and_grad = value_and_grad(_objective(model, loss_fn), has_aux=True)
    if not isinstance(donate, (bool, np.bool_)):
        raise TypeError(f"make_train_step: donate must be a bool, got {donate!r}")

    def core(params, state, opt_state, x, y, key):
        (loss, (new_state, out)), grads = loss_and_grad(params, state, x, y, key)
        if check_finite:
            recording.check(check_finite_step, loss, grads)  # before the update, on every replay too
        # under jit the plan donates (donate_argnums): its update writes into the buffers given up
        params, opt_state = optimizer.update_and_apply(grads, opt_state, params, donate=bool(donate) and not jit)
        return params, new_state, opt_state, loss, out

    core = jit_function(core, donate_argnums=(0, 2) if donate else ()) if jit else core

    def step(params, state, opt_state, x, y, key):
        params, state, opt_state, loss, out = core(params, state, opt_state, x, y, key)
        return params, state, opt_state, _metrics(loss, out, y)

    step.jitted = core if jit else None
    return step


def data_parallel_step(model, loss_fn, optimizer, *, check_finite=True, options=True):
    """:func:`make_train_step` for data-parallel training on the MPI ranks (``distributed=options``).

    Every rank calls ``step(params, state, opt_state, x, y, key)`` with its own batch and the same ``key``.
    The first call checks that every rank holds the same params and state trees (a ``ValueError`` on
    every rank otherwise) and starts every rank from rank 0's params, state and optimizer state.  Each
    call then runs the rank's forward and backward with the key ``fnnet.distributed.rank_key(key)``,
    averages the gradients over the ranks (in buckets, overlapping the backward unless
    ``options.overlap`` is off), averages the updated model state (BatchNorm running statistics) and the
    metrics, and applies the same update on every rank.  With ``options.deterministic`` an N-rank step
    gives the same bits as one process that runs ``fnnet.optim.accumulate_gradients`` over the N ranks'
    batches (micro-batch ``r`` with key ``fold_in(key, r)``) and averages the N updated states with
    ``fnnet.optim.accumulate``.

    Args:
        options: ``True`` (``fnnet.distributed.DataParallel()``) or a ``DataParallel``.

    Raises:
        ImportError: mpi4py is not installed (``pip install "fnnet[distributed]"``).
        TypeError: ``options`` is neither True nor a ``DataParallel``.
    """
    if options is True:
        options = dist.DataParallel()
    if not isinstance(options, dist.DataParallel):
        raise TypeError(f"make_train_step: distributed must be False, True or a fnnet.distributed.DataParallel, "
                        f"got {options!r}; e.g. distributed=fnnet.distributed.DataParallel(deterministic=True)")
    dist.init()
    reducer = dist.GradientReducer(options)
    hook = reducer.on_gradient if options.overlap else None
    loss_and_grad = value_and_grad(_objective(model, loss_fn), has_aux=True, on_gradient=hook)

    def step(params, state, opt_state, x, y, key):
        if reducer.comm is None:
            params, state, opt_state = reducer.setup(params, state, opt_state)
        reducer.begin()
        rank_key = None if key is None else dist.rank_key(key)
        (loss, (new_state, out)), grads = loss_and_grad(params, state, x, y, rank_key)
        grads = reducer.finish(grads)
        new_state = dist.allreduce_mean(new_state, deterministic=options.deterministic)
        local = _metrics(loss, out, y)
        mean = dist.allreduce_mean(np.array(list(local.values())), deterministic=True)
        metrics = dict(zip(local, mean.tolist()))
        if check_finite:
            check_finite_step(metrics["loss"], grads)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optim.apply_updates(params, updates)
        return params, new_state, opt_state, metrics

    return step


def run_epoch(step, params, state, opt_state, x, y, key, *, batch_size=64, shuffle=True, drop_last=False,
              progress=None):
    """One pass over ``(x, y)`` in batches drawn by a key-driven shuffle.

    Args:
        step: from :func:`make_train_step`.
        key: drives the shuffle and, split once per batch, the step's randomness (dropout).
        progress: optional callable ``progress(metrics)`` called after each batch (e.g. a tqdm update).

    Returns:
        ``(params, state, opt_state, metrics)`` with metrics averaged over examples.
    """
    shuffle_key, step_key = fnrandom.split(key)
    order = list(datasets.batches(shuffle_key, len(x), batch_size, shuffle=shuffle, drop_last=drop_last))
    keys = fnrandom.split(step_key, max(len(order), 1))
    totals, count = {}, 0
    for batch, (idx, k) in enumerate(zip(order, keys)):
        try:
            params, state, opt_state, metrics = step(params, state, opt_state, x[idx], y[idx], k)
        except NonFiniteError as error:
            raise NonFiniteError(f"batch {batch} of {len(order)}: {error}") from None
        for name, v in metrics.items():
            totals[name] = totals.get(name, 0.0) + v * len(idx)
        count += len(idx)
        if progress is not None:
            progress(metrics)
    return params, state, opt_state, {name: v / max(count, 1) for name, v in totals.items()}


def predict(model, params, state, x, *, batch_size=512):
    """Model outputs in evaluation mode (``train=False``), computed in batches, as one array."""
    outs = [_forward(model, params, state, x[i:i + batch_size], None, False)[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(outs) if outs else np.zeros((0,))


def evaluate(model, params, state, x, y, *, loss_fn=None, batch_size=512) -> dict:
    """``{"accuracy": ..., "loss": ...}`` (loss only when ``loss_fn`` is given) in evaluation mode."""
    out = predict(model, params, state, x, batch_size=batch_size)
    result = {"accuracy": accuracy(out, y)}
    if loss_fn is not None:
        result["loss"] = float(loss_fn(out, y))
    return result
