"""Optimizers on part of a params tree: :func:`masked`, :func:`multi_transform` and :func:`set_to_zero`.

An inner transformation sees a *partial* tree: the params tree with ``None`` in place of every leaf it
does not own (``None`` is an empty subtree in :mod:`fnnet.tree`), so its state holds buffers only for the
leaves it owns, and its updates come back in the same partial structure.  They are then merged into a
full tree, with zero updates for leaves no transformation owns.  ::

    freeze_embeddings = fnnet.optim.masked(fnnet.optim.adam(1e-3), mask)   # mask: a tree of bools
    opt = fnnet.optim.multi_transform({"train": fnnet.optim.adamw(1e-3), "frozen": fnnet.optim.set_to_zero()},
                                      labels)                             # labels: a tree of strings
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .. import tree
from .base import (
    EmptyState, GradientTransformation, check_mask_argument, check_state, float_leaves, leaves_like, mask_leaves,
    matching_leaves,
)

__all__ = ["MaskedState", "MultiTransformState", "masked", "multi_transform", "set_to_zero"]


class MaskedState(NamedTuple):
    """The state of :func:`masked`.

    Attributes:
        inner_state: the inner transformation's state, over the masked-in leaves only.
    """

    inner_state: Any


class MultiTransformState(NamedTuple):
    """The state of :func:`multi_transform`.

    Attributes:
        inner_states: ``{label: state}``, each label's transformation state over that label's leaves only.
    """

    inner_states: dict


def _partial(treedef, leaves, keep):
    """The tree of ``leaves`` with None in place of each leaf whose ``keep`` entry is False."""
    return tree.unflatten(treedef, [x if k else None for x, k in zip(leaves, keep)])


def _check_transform(where, name, t):
    if not isinstance(t, GradientTransformation):
        raise TypeError(f"{where}: {name} must be a GradientTransformation, got {type(t).__name__}; call the "
                        "factory, e.g. fnnet.optim.adam(1e-3) not fnnet.optim.adam")


def _inner_update(where, inner, treedef, g_leaves, p_leaves, keep, inner_state):
    """Run ``inner`` on the kept leaves; returns (its updates, one per kept leaf in order; its new state)."""
    sub_params = None if p_leaves is None else _partial(treedef, p_leaves, keep)
    sub_updates = _partial(treedef, g_leaves, keep)
    out, new_state = inner.update(sub_updates, inner_state, sub_params)
    out_leaves, out_def = tree.flatten(out)
    if out_def != tree.structure(sub_updates):
        raise ValueError(f"{where}: the inner transformation returned updates of structure {out_def!r} for "
                         f"updates of structure {tree.structure(sub_updates)!r}; it must keep the structure")
    return out_leaves, new_state


def _params_leaves(where, params, treedef, g_leaves):
    return None if params is None else matching_leaves(where, "params", params, treedef, g_leaves, "updates")


def masked(inner: GradientTransformation, mask) -> GradientTransformation:
    """Apply ``inner`` only to the leaves where ``mask`` is True; the others' updates pass through unchanged.

    ``inner`` sees the params and updates with ``None`` in place of masked-out leaves, so its state keeps
    no buffer for them (an Adam over half the params holds half the moments).  Passing the other updates
    through (optax's convention) makes ``masked`` a building block of a ``chain``: ``chain(masked(
    add_weight_decay(1e-4), mask), scale_by_adam(), ...)`` decays only where ``mask`` is True.  To freeze
    leaves instead, give them ``set_to_zero()`` in :func:`multi_transform`.

    Args:
        inner: the transformation to apply, e.g. ``fnnet.optim.adam(1e-3)``.
        mask: a tree of bools with the structure of the params (one per leaf), or a function
            ``params -> such a tree`` (called with the params in ``init`` and in ``update``, or with the
            updates when ``update`` gets no params: it must depend only on structure and shapes).

    Returns:
        A :class:`GradientTransformation` with state :class:`MaskedState`.

    Raises:
        TypeError: ``inner`` is not a transformation; a mask leaf is not a bool.
        ValueError: the mask does not have the structure of the params.

    Example: clip only the first layer's gradients, then Adam on everything::

        mask = {"0": {"weight": True, "bias": True}, "1": {"weight": False, "bias": False}}
        opt = fnnet.optim.chain(fnnet.optim.masked(fnnet.optim.clip_by_global_norm(1.0), mask),
                                fnnet.optim.adam(1e-3))
    """
    where = "fnnet.optim.masked"
    _check_transform(where, "inner", inner)
    mask = check_mask_argument(where, mask)

    def init(params):
        leaves, treedef = float_leaves(where, "params", params)
        return MaskedState(inner.init(_partial(treedef, leaves, mask_leaves(where, mask, params, treedef))))

    def update(updates, state, params=None):
        check_state(where, state, MaskedState)
        g_leaves, treedef = float_leaves(where, "updates", updates)
        p_leaves = _params_leaves(where, params, treedef, g_leaves)
        keep = mask_leaves(where, mask, updates if params is None else params, treedef)
        out, inner_state = _inner_update(where, inner, treedef, g_leaves, p_leaves, keep, state.inner_state)
        out = iter(out)
        merged = [next(out) if k else g for g, k in zip(g_leaves, keep)]
        return tree.unflatten(treedef, merged), MaskedState(inner_state)

    return GradientTransformation(init, update)


def _label_leaves(where, labels, params, treedef, transforms) -> list:
    leaves = leaves_like(where, "labels", labels, params, treedef,
                         "build it with fnnet.tree.map_with_path or fnnet.layers.param_labels")
    for i, label in enumerate(leaves):
        if not isinstance(label, str) or label not in transforms:
            path = tree.paths(tree.unflatten(treedef, leaves))[i]
            raise ValueError(f"{where}: labels leaf at {path!r} is {label!r}, which is not a key of transforms "
                             f"{sorted(transforms)}; add a transformation for it (set_to_zero() to freeze)")
    return leaves


def multi_transform(transforms: dict, labels) -> GradientTransformation:
    """Apply a different transformation to each group of leaves: leaf ``i`` is updated by
    ``transforms[label_i]``, which sees only the leaves with its label (``None`` elsewhere).

    Args:
        transforms: ``{label: GradientTransformation}``, labels being strings.
        labels: a tree of label strings with the structure of the params, or a function
            ``params -> such a tree`` (see :func:`masked` for when it is called).

    Returns:
        A :class:`GradientTransformation` with state :class:`MultiTransformState` (one state per label,
        each holding buffers only for that label's leaves).

    Raises:
        TypeError: a value of ``transforms`` is not a transformation, or a key not a str.
        ValueError: empty ``transforms``; ``labels`` of another structure, or a label with no transformation.

    Example: SGD for the embeddings, AdamW for the rest::

        labels = fnnet.tree.map_with_path(lambda path, p: "sgd" if path.startswith("0/") else "adamw", params)
        opt = fnnet.optim.multi_transform({"sgd": fnnet.optim.sgd(0.1), "adamw": fnnet.optim.adamw(1e-3)}, labels)
    """
    where = "fnnet.optim.multi_transform"
    if not isinstance(transforms, dict) or not transforms:
        raise ValueError(f"{where}: transforms must be a non-empty dict {{label: GradientTransformation}}, got "
                         f"{transforms!r}")
    for label, t in transforms.items():
        if not isinstance(label, str):
            raise TypeError(f"{where}: the keys of transforms must be str labels, got {label!r}")
        _check_transform(where, f"transforms[{label!r}]", t)
    names = sorted(transforms)

    def init(params):
        leaves, treedef = float_leaves(where, "params", params)
        found = _label_leaves(where, labels, params, treedef, transforms)
        return MultiTransformState({name: transforms[name].init(
            _partial(treedef, leaves, [label == name for label in found])) for name in names})

    def update(updates, state, params=None):
        check_state(where, state, MultiTransformState)
        if not isinstance(state.inner_states, dict) or sorted(state.inner_states) != names:
            raise ValueError(f"{where}: opt_state holds states for labels {sorted(state.inner_states)}, but the "
                             f"transforms are {names}; create the state with this optimizer's init(params)")
        g_leaves, treedef = float_leaves(where, "updates", updates)
        p_leaves = _params_leaves(where, params, treedef, g_leaves)
        found = _label_leaves(where, labels, updates if params is None else params, treedef, transforms)
        merged, new_states = [None] * len(g_leaves), {}
        for name in names:
            keep = [label == name for label in found]
            out, new_states[name] = _inner_update(where, transforms[name], treedef, g_leaves, p_leaves, keep,
                                                  state.inner_states[name])
            for i, u in zip((i for i, k in enumerate(keep) if k), out):
                merged[i] = u
        return tree.unflatten(treedef, merged), MultiTransformState(new_states)

    return GradientTransformation(init, update)


def set_to_zero() -> GradientTransformation:
    """Replace every update by zeros (stateless): the params it sees never change.

    Use it in :func:`multi_transform` to freeze a group of leaves; it keeps no buffers.

    Returns:
        A :class:`GradientTransformation` with state ``EmptyState()``.
    """
    where = "fnnet.optim.set_to_zero"

    def init(params):
        return EmptyState()

    def update(updates, state, params=None):
        leaves, treedef = float_leaves(where, "updates", updates)
        return tree.unflatten(treedef, [np.zeros_like(g) for g in leaves]), state

    return GradientTransformation(init, update)
