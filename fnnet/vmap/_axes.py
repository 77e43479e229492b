"""``in_axes``/``out_axes`` specs: one axis (int or None) per leaf, checked, and the common batch size."""

from __future__ import annotations

import numpy as np

from .. import tree


def _axis_tree_error(where, what, spec, node):
    return ValueError(
        f"{where}: {what} must be an int, None, or a tree prefix of the argument; got {spec!r} for "
        f"{tree.structure(node).describe()}; give one axis per argument, e.g. in_axes=(None, 0, 0)"
    )


def leaf_axes(where, what, spec, node):
    """One axis (int or None) per leaf of ``node`` (in ``tree.flatten`` order) from the prefix tree ``spec``."""
    if spec is None or isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        return [None if spec is None else int(spec)] * len(tree.leaves(node))
    if isinstance(spec, dict):
        if not isinstance(node, dict) or set(spec) != set(node):
            raise _axis_tree_error(where, what, spec, node)
        return [a for k in tree.structure(node).keys for a in leaf_axes(where, f"{what}[{k!r}]", spec[k], node[k])]
    if isinstance(spec, (list, tuple)):
        if not isinstance(node, (list, tuple)) or len(spec) != len(node):
            raise _axis_tree_error(where, what, spec, node)
        return [a for i, (s, n) in enumerate(zip(spec, node)) for a in leaf_axes(where, f"{what}[{i}]", s, n)]
    raise _axis_tree_error(where, what, spec, node)


def arg_axes(where, in_axes, args):
    """``in_axes`` spread to a list of per-leaf axes for each positional argument."""
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)
    if isinstance(in_axes, tuple):
        if len(in_axes) != len(args):
            raise ValueError(f"{where}: in_axes has {len(in_axes)} entries but the function was called with "
                             f"{len(args)} positional argument(s); give one entry (int, None or tree) per argument")
        return [leaf_axes(where, f"in_axes[{i}]", s, a) for i, (s, a) in enumerate(zip(in_axes, args))]
    if not (in_axes is None or isinstance(in_axes, (int, np.integer)) and not isinstance(in_axes, bool)):
        raise ValueError(f"{where}: in_axes must be an int, None, or a tuple with one entry per positional "
                         f"argument, got {in_axes!r}; e.g. in_axes=({in_axes!r},) for a one-argument function")
    return [leaf_axes(where, "in_axes", in_axes, a) for a in args]


def _normalized_axis(where, label, leaf, axis):
    ndim = getattr(leaf, "ndim", None)
    if ndim is None:
        raise ValueError(f"{where}: {label} is batched (axis {axis}) but is a {type(leaf).__name__}, not an array; "
                         "use None in in_axes for it")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{where}: in_axes gives axis {axis} for {label} of shape {tuple(leaf.shape)}; "
                         f"expected an axis in [{-ndim}, {ndim - 1}]")
    return axis % ndim


def batch_size(where, args, axes):
    """The common batch size of the batched leaves; normalizes ``axes`` in place."""
    sizes = {}
    for i, (arg, arg_axes_) in enumerate(zip(args, axes)):
        leaves, _ = tree.flatten(arg)
        paths = tree.paths(arg)
        for j, (leaf, axis) in enumerate(zip(leaves, arg_axes_)):
            if axis is None:
                continue
            label = f"argument {i}" + (f" (leaf {paths[j]!r})" if paths[j] else "")
            arg_axes_[j] = _normalized_axis(where, label, leaf, axis)
            sizes[label] = leaf.shape[arg_axes_[j]]
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


def check_out_axis(where, axis, ndim, j):
    """``axis`` of output leaf ``j`` (``ndim`` axes per example) normalized into ``[0, ndim]``."""
    if not -(ndim + 1) <= axis <= ndim:
        raise ValueError(f"{where}: out_axes gives axis {axis} for output leaf {j} of {ndim} dimension(s); "
                         f"expected an axis in [{-(ndim + 1)}, {ndim}]")
    return axis % (ndim + 1)


def differs_error(where, j):
    return ValueError(f"{where}: out_axes is None for output leaf {j}, but it differs between examples; "
                      "give it an int out_axes to stack it")
