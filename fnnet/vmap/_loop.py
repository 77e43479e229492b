"""The per-example loop: ``fn`` once per example on views of the batched leaves, each output leaf stacked.

It runs any function (control flow on values, user primitives without batching rules, ``grad(vmap(f))``)
and is bit-identical to the hand-written loop; ``vmap`` falls back to it when the batched run cannot go on.
"""

from __future__ import annotations

import numpy as np

from .. import tree
from ..autodiff import Tracer
from ..ops import concatenate, reshape
from ._axes import check_out_axis, differs_error, leaf_axes


def run_loop(where, fn, args, kwargs, axes, n, out_axes):
    """``fn(*example_i, **kwargs)`` for each example ``i < n``, the outputs stacked along ``out_axes``."""
    flat = [tree.flatten(a) for a in args]
    outs = []
    for i in range(n):
        example = [_example_arg(arg, leaves, d, arg_axes, i) for arg, (leaves, d), arg_axes in zip(args, flat, axes)]
        outs.append(fn(*example, **kwargs))
    return _stack_outputs(where, outs, out_axes)


def _example(leaf, axis, i):
    """Example ``i`` of ``leaf`` along ``axis`` (a view for arrays; a traced index for tracers)."""
    if axis is None:
        return leaf
    return leaf[(slice(None),) * axis + (i,)]


def _example_arg(arg, leaves, treedef, axes, i):
    """Example ``i`` of one argument: the argument itself when none of its leaves is batched."""
    if all(axis is None for axis in axes):
        return arg
    return tree.unflatten(treedef, [_example(leaf, axis, i) for leaf, axis in zip(leaves, axes)])


def _stack_outputs(where, outs, out_axes):
    first_leaves, out_def = tree.flatten(outs[0])
    columns = [first_leaves]
    for k, out in enumerate(outs[1:], 1):
        leaves, d = tree.flatten(out)
        if d != out_def:
            raise ValueError(f"{where}: the function returned {d!r} for example {k} but {out_def!r} for example 0; "
                             "return the same tree structure for every example")
        columns.append(leaves)
    axes = leaf_axes(where, "out_axes", out_axes, outs[0])
    stacked = [_stack_leaf(where, [c[j] for c in columns], axis, j) for j, axis in enumerate(axes)]
    return tree.unflatten(out_def, stacked)


def _stack_leaf(where, values, axis, j):
    if axis is None:
        if any(not np.array_equal(np.asarray(_plain(v)), np.asarray(_plain(values[0]))) for v in values[1:]):
            raise differs_error(where, j)
        return values[0]
    shape = np.shape(_plain(values[0]))
    axis = check_out_axis(where, axis, len(shape), j)
    if any(type(v) is Tracer for v in values):
        # concatenate of size-1 slices, not ops.stack: stack's VJP returns numpy scalars for 0-d inputs
        expanded = [reshape(v, shape[:axis] + (1,) + shape[axis:]) for v in values]
        return concatenate(expanded, axis=axis)
    return np.stack([np.asarray(v) for v in values], axis=axis)


def _plain(v):
    return v.value if type(v) is Tracer else v
