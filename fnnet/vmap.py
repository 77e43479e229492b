"""``vmap``: map a function over a batch axis of its arguments, and per-example gradients on top of it.

``fnnet.vmap(f)(xs)`` means ``stack([f(x) for x in xs])``, and that is how it runs: one call of ``f`` per
example, on views of the batched leaves, then one stack per output leaf.  fnnet's ops validate and trace
concrete arrays, so there is no abstract interpreter to batch them; the loop keeps every function
(control flow on values, ``grad`` inside, user primitives) correct, and makes the result bit-identical to the
hand-written loop (see docs/design.md, "vmap").
"""

from __future__ import annotations

import functools

import numpy as np

from . import tree
from .autodiff import Tracer, grad
from .ops import concatenate, reshape

__all__ = ["vmap", "per_example_grads"]


def _axis_tree_error(where, what, spec, node):
    return ValueError(
        f"{where}: {what} must be an int, None, or a tree prefix of the argument; got {spec!r} for "
        f"{tree.structure(node).describe()}; give one axis per argument, e.g. in_axes=(None, 0, 0)"
    )


def _leaf_axes(where, what, spec, node):
    """One axis (int or None) per leaf of ``node`` (in ``tree.flatten`` order) from the prefix tree ``spec``."""
    if spec is None or isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        return [None if spec is None else int(spec)] * len(tree.leaves(node))
    if isinstance(spec, dict):
        if not isinstance(node, dict) or set(spec) != set(node):
            raise _axis_tree_error(where, what, spec, node)
        return [a for k in tree.structure(node).keys for a in _leaf_axes(where, f"{what}[{k!r}]", spec[k], node[k])]
    if isinstance(spec, (list, tuple)):
        if not isinstance(node, (list, tuple)) or len(spec) != len(node):
            raise _axis_tree_error(where, what, spec, node)
        return [a for i, (s, n) in enumerate(zip(spec, node)) for a in _leaf_axes(where, f"{what}[{i}]", s, n)]
    raise _axis_tree_error(where, what, spec, node)


def _arg_axes(where, in_axes, args):
    """``in_axes`` spread to a list of per-leaf axes for each positional argument."""
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)
    if isinstance(in_axes, tuple):
        if len(in_axes) != len(args):
            raise ValueError(f"{where}: in_axes has {len(in_axes)} entries but the function was called with "
                             f"{len(args)} positional argument(s); give one entry (int, None or tree) per argument")
        return [_leaf_axes(where, f"in_axes[{i}]", s, a) for i, (s, a) in enumerate(zip(in_axes, args))]
    if not (in_axes is None or isinstance(in_axes, (int, np.integer)) and not isinstance(in_axes, bool)):
        raise ValueError(f"{where}: in_axes must be an int, None, or a tuple with one entry per positional "
                         f"argument, got {in_axes!r}; e.g. in_axes=({in_axes!r},) for a one-argument function")
    return [_leaf_axes(where, "in_axes", in_axes, a) for a in args]


def _normalized_axis(where, label, leaf, axis):
    ndim = getattr(leaf, "ndim", None)
    if ndim is None:
        raise ValueError(f"{where}: {label} is batched (axis {axis}) but is a {type(leaf).__name__}, not an array; "
                         "use None in in_axes for it")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{where}: in_axes gives axis {axis} for {label} of shape {tuple(leaf.shape)}; "
                         f"expected an axis in [{-ndim}, {ndim - 1}]")
    return axis % ndim


def _batch_size(where, args, axes):
    """The common batch size of the batched leaves; normalizes ``axes`` in place."""
    sizes = {}
    for i, (arg, arg_axes) in enumerate(zip(args, axes)):
        leaves, _ = tree.flatten(arg)
        paths = tree.paths(arg)
        for j, (leaf, axis) in enumerate(zip(leaves, arg_axes)):
            if axis is None:
                continue
            label = f"argument {i}" + (f" (leaf {paths[j]!r})" if paths[j] else "")
            arg_axes[j] = _normalized_axis(where, label, leaf, axis)
            sizes[label] = leaf.shape[arg_axes[j]]
    if not sizes:
        raise ValueError(f"{where}: no argument is batched (every in_axes entry is None); batch at least one")
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{label}: {n}" for label, n in sizes.items())
        raise ValueError(f"{where}: the batched arguments disagree on the batch size ({shown}); "
                         "give them the same length along their in_axes")
    n = next(iter(sizes.values()))
    if n == 0:
        raise ValueError(f"{where}: batch size 0; vmap calls the function once per example and needs at least one")
    return n


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
    axes = _leaf_axes(where, "out_axes", out_axes, outs[0])
    stacked = [_stack_leaf(where, [c[j] for c in columns], axis, j) for j, axis in enumerate(axes)]
    return tree.unflatten(out_def, stacked)


def _stack_leaf(where, values, axis, j):
    if axis is None:
        if any(not np.array_equal(np.asarray(_plain(v)), np.asarray(_plain(values[0]))) for v in values[1:]):
            raise ValueError(f"{where}: out_axes is None for output leaf {j}, but it differs between examples; "
                             "give it an int out_axes to stack it")
        return values[0]
    ndim = np.ndim(_plain(values[0]))
    if not -(ndim + 1) <= axis <= ndim:
        raise ValueError(f"{where}: out_axes gives axis {axis} for output leaf {j} of {ndim} dimension(s); "
                         f"expected an axis in [{-(ndim + 1)}, {ndim}]")
    if any(type(v) is Tracer for v in values):
        # concatenate of size-1 slices, not ops.stack: stack's VJP returns numpy scalars for 0-d inputs
        shape = np.shape(_plain(values[0]))
        axis %= len(shape) + 1
        expanded = [reshape(v, shape[:axis] + (1,) + shape[axis:]) for v in values]
        return concatenate(expanded, axis=axis)
    return np.stack([np.asarray(v) for v in values], axis=axis)


def _plain(v):
    return v.value if type(v) is Tracer else v


def vmap(fn, in_axes=0, out_axes=0):
    """Vectorize ``fn`` over a batch axis: ``vmap(fn)(xs)[i] == fn(xs[i])``.

    Args:
        fn: a function of arrays and trees of arrays (it may call ops, ``grad``, layers' ``apply``).
        in_axes: where each positional argument's batch axis is: an int (every leaf of every argument),
            None (not batched: passed whole to every call), or a tuple with one entry per positional argument,
            each an int, None or a tree prefix of that argument (``{"weight": 0, "bias": None}``).
            Keyword arguments are never batched.
        out_axes: where the batch axis goes in each output leaf: an int, or a tree prefix of ``fn``'s output
            (None for an output that is the same for every example).

    Returns:
        ``batched(*args, **kwargs)``: ``fn``'s output tree, each leaf stacked along its ``out_axes``.  It runs
        ``fn`` once per example on views of the batched leaves and stacks the results, so it is bit-identical
        to that Python loop (under ``grad`` the stacking is traced, so ``grad(vmap(f))`` works too).

    Raises:
        ValueError: an ``in_axes``/``out_axes`` that is not a prefix of the arguments/output, an axis out of
            range, batched arguments with different batch sizes, no batched argument, batch size 0, or outputs
            whose structure differs between examples.  Each message names the argument or output leaf.

    Example::

        per_example = fnnet.vmap(fnnet.grad(loss), in_axes=(None, 0, 0))(params, x, y)
    """
    where = f"vmap({getattr(fn, '__name__', 'fn')})"

    @functools.wraps(fn)
    def batched(*args, **kwargs):
        axes = _arg_axes(where, in_axes, args)
        n = _batch_size(where, args, axes)
        flat = [tree.flatten(a) for a in args]
        outs = []
        for i in range(n):
            example = [_example_arg(arg, leaves, d, arg_axes, i)
                       for arg, (leaves, d), arg_axes in zip(args, flat, axes)]
            outs.append(fn(*example, **kwargs))
        return _stack_outputs(where, outs, out_axes)

    return batched


def per_example_grads(loss, params, *batched_args, **kwargs):
    """Gradients of ``loss(params, *example)`` for each example: ``vmap(grad(loss), in_axes=(None, 0, ...))``.

    Args:
        loss: ``loss(params, *example_args, **kwargs) -> scalar`` for ONE example (no batch axis).
        params: the params tree (not batched).
        *batched_args: arrays (or trees) with the examples along axis 0, e.g. ``x: (batch, ...)``,
            ``y: (batch,)``.
        **kwargs: passed to every call of ``loss`` unchanged.

    Returns:
        The params tree with a leading batch axis on every leaf: ``leaf.shape == (batch, *param.shape)``.
    """
    if not batched_args:
        raise ValueError("per_example_grads: give at least one batched argument after params, e.g. "
                         "per_example_grads(loss, params, x, y)")
    fn = vmap(grad(loss), in_axes=(None,) + (0,) * len(batched_args))
    return fn(params, *batched_args, **kwargs)
