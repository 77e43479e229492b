"""The batched run: ``fn`` called once, its batched arguments ``Batched`` values holding every example.

Ops see one example's shape and validate it as in the loop; each primitive runs its batching rule on the
whole batch (``fnnet.autodiff.batching``); ``grad`` inside makes a batched tape whose VJPs give per-example
gradients.  Anything without a rule raises ``NoBatchingRule`` and ``vmap`` runs the loop instead.
"""

from __future__ import annotations

import numpy as np

from .. import tree
from ..autodiff import Batched, NoBatchingRule, Tracer
from ..autodiff.arrays import plain_array
from ..autodiff.batching import batch_scope
from ._axes import check_out_axis, differs_error, leaf_axes


def run_batched(where, fn, args, kwargs, axes, n, out_axes):
    """``fn`` once on the whole batch; its output leaves with the batch axis at ``out_axes``.

    Raises:
        NoBatchingRule: something in ``fn`` has no batching rule (or anything else it raised).
    """
    if any(type(leaf) is Tracer for leaf in tree.leaves((args, kwargs))):
        raise NoBatchingRule("an argument is traced by an enclosing grad (grad of vmap has no batching rules)")
    batched_args = []
    for i, (arg, arg_axes) in enumerate(zip(args, axes)):
        leaves, treedef = tree.flatten(arg)
        batched_args.append(tree.unflatten(treedef, [
            leaf if axis is None else Batched(plain_array(where, f"argument {i}", np.moveaxis(leaf, axis, 0)))
            for leaf, axis in zip(leaves, arg_axes)]))
    with batch_scope(n):
        out = fn(*batched_args, **kwargs)
    leaves, out_def = tree.flatten(out)
    out_leaf_axes = leaf_axes(where, "out_axes", out_axes, out)
    return tree.unflatten(out_def, [_unbatched(where, leaf, axis, n, j)
                                    for j, (leaf, axis) in enumerate(zip(leaves, out_leaf_axes))])


def _unbatched(where, leaf, axis, n, j):
    """Output leaf ``j`` as the loop would stack it: batch axis at ``axis``; a value that is the same for
    every example repeated (or returned as it is, for ``axis`` None)."""
    if type(leaf) is Tracer:
        raise NoBatchingRule("the function returned a value traced by an enclosing grad")
    if type(leaf) is Batched:
        v = leaf.value
        if axis is None:
            if not np.array_equal(v, np.broadcast_to(v[:1], v.shape)):
                raise differs_error(where, j)
            return np.array(v[0])
        axis = check_out_axis(where, axis, v.ndim - 1, j)
        return v if axis == 0 else np.ascontiguousarray(np.moveaxis(v, 0, axis))
    if axis is None:
        return leaf
    v = np.asarray(leaf)
    axis = check_out_axis(where, axis, v.ndim, j)
    return np.repeat(np.expand_dims(v, axis), n, axis=axis)
