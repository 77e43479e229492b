"""Gradient accumulation: combine per-micro-batch gradient trees (``accumulate``) or compute them one
micro-batch at a time, optionally in Python threads (``accumulate_gradients``)."""

from __future__ import annotations

import concurrent.futures

import numpy as np

from .. import kernels as K
from .. import tree
from .base import cast, check_hyper, float_leaves, matching_leaves

__all__ = ["accumulate", "accumulate_gradients"]


def accumulate(grads_list, weights=None):
    """Combine per-micro-batch gradient trees: ``sum_i w_i g_i / sum_i w_i`` (plain mean without weights).

    The sum runs in list order, leaf by leaf in each leaf's dtype, so the result does not depend on
    anything but the inputs.

    Args:
        grads_list: a non-empty sequence of gradient trees with one structure, shapes and dtypes.
        weights: optional non-negative numbers, one per tree (e.g. micro-batch sizes), not all zero.

    Returns:
        A gradient tree of the same structure and dtypes.

    Raises:
        ValueError: empty list, bad weights, or trees of different structure/shape.
        TypeError: dtypes.
    """
    where = "fnnet.optim.accumulate"
    grads_list = list(grads_list)
    if not grads_list:
        raise ValueError(f"{where}: grads_list is empty; pass at least one gradient tree")
    if weights is not None:
        weights = [check_hyper(where, f"weights[{i}]", w) for i, w in enumerate(weights)]
        if len(weights) != len(grads_list):
            raise ValueError(f"{where}: got {len(weights)} weights for {len(grads_list)} gradient trees")
        if sum(weights) <= 0:
            raise ValueError(f"{where}: weights must not all be zero, got {weights}")
    acc = _Accumulator(where)
    for i, g in enumerate(grads_list):
        acc.add(g, None if weights is None else weights[i])
    return acc.result()


class _Accumulator:
    """Running ``sum_i w_i g_i`` over gradient trees, in the order they are added, in each leaf's dtype."""

    def __init__(self, where):
        self.where, self.count, self.weight_sum = where, 0, 0.0
        self.treedef = self.first = self.total = None

    def add(self, grads, weight=None):
        name = f"gradient tree {self.count}"
        if self.treedef is None:
            self.first, self.treedef = float_leaves(self.where, name, grads)
            leaves = self.first
        else:
            leaves = matching_leaves(self.where, name, grads, self.treedef, self.first,
                                     grads_name="gradient tree 0")
        terms = leaves if weight is None else [x * cast(weight, x.dtype) for x in leaves]
        self.total = [np.array(t) for t in terms] if self.total is None else [
            a + t for a, t in zip(self.total, terms)]
        self.count += 1
        self.weight_sum += 1.0 if weight is None else weight

    def result(self):
        return tree.unflatten(self.treedef, [t / cast(self.weight_sum, t.dtype) for t in self.total])


def accumulate_gradients(grad_fn, params, batches, weights=None, *, threads=1):
    """Gradient of a mean loss over a large batch, computed one micro-batch at a time.

    Calls ``grad_fn(params, batch)`` for each micro-batch in order and combines the results with
    :func:`accumulate`.  For a loss that is a *mean* over examples, equal-sized micro-batches need no
    weights (the mean of the micro-batch gradients is the full-batch gradient); pass the micro-batch sizes
    as ``weights`` when they differ.

    Args:
        grad_fn: ``grad_fn(params, batch) -> grads`` (e.g. ``fnnet.grad(loss)``), grads shaped like params.
        params: the params tree passed unchanged to every call.
        batches: an iterable of micro-batches (anything ``grad_fn`` accepts, e.g. ``(x, y)`` tuples).
        weights: optional per-micro-batch weights (see :func:`accumulate`).
        threads: compute up to this many micro-batch gradients at once in Python threads.  fnnet's kernels
            release the GIL and each ``grad`` call has its own tape, so the threads run in parallel.  The
            results are still combined in micro-batch index order, so the sum is bit-identical to the
            serial one whatever order the threads finish in.

    Returns:
        The combined gradient tree.

    Raises:
        ValueError: no micro-batches, or see :func:`accumulate`.

    Example::

        grads = fnnet.optim.accumulate_gradients(fnnet.grad(loss), params,
                                                 [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)])
    """
    where = "fnnet.optim.accumulate_gradients"
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"{where}: threads must be an int >= 1, got {threads!r}")
    acc = _Accumulator(where)
    weights = None if weights is None else list(weights)
    if threads > 1:
        def work(batch):
            K.share_threads(threads)  # each Python thread's kernels use its share of the cores
            return grad_fn(params, batch)

        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            grads_in_order = pool.map(work, list(batches))  # yields in index order
            return _combine(where, acc, grads_in_order, weights)
    return _combine(where, acc, (grad_fn(params, b) for b in batches), weights)


def _combine(where, acc, grads_in_order, weights):
    for i, grads in enumerate(grads_in_order):
        if weights is not None and i >= len(weights):
            raise ValueError(f"{where}: more micro-batches than the {len(weights)} weights given")
        acc.add(grads, None if weights is None else check_hyper(where, f"weights[{i}]", weights[i]))
    if acc.count == 0:
        raise ValueError(f"{where}: batches is empty; pass at least one micro-batch")
    if weights is not None and len(weights) != acc.count:
        raise ValueError(f"{where}: got {len(weights)} weights for {acc.count} micro-batches")
    if acc.weight_sum <= 0:
        raise ValueError(f"{where}: weights must not all be zero, got {weights}")
    return acc.result()
