"""``walk``: the one way to visit every layer of a model.

Every reader of a model's structure (``fnnet.summary``, ``fnnet.precompile``, activation recording,
``fnnet.io.load_torch_state_dict``, the tests) walks it with :func:`walk`, which asks each layer for its
``children()``, so they agree on what a container is.  ::

    for path, layer, in_shape in fnnet.layers.walk(model, (None, 1, 28, 28)):
        print(path or "(model)", type(layer).__name__, in_shape)

:func:`param_labels` uses it to tell, for every params leaf, which layer owns it, so optimizer masks can
be built from what a layer says about its params (:func:`decay_mask`), not from name patterns.
"""

from __future__ import annotations

from typing import NamedTuple

from .. import tree
from .base import Layer, child_errors

__all__ = ["walk", "children_of", "is_leaf", "LayerVisit", "param_labels", "decay_mask"]


class LayerVisit(NamedTuple):
    """One layer met by :func:`walk`."""

    path: str  #: where its params are in the params tree: ``""`` for the root, ``"3/block/0"`` inside
    layer: object
    in_shape: object  #: its input shape (a tuple of shapes for multi-input layers); None without ``in_shape``


def children_of(layer) -> tuple:
    """``layer.children()``; ``()`` for a layer object that does not define it (a leaf)."""
    children = getattr(layer, "children", None)
    return () if children is None else tuple(children())


def is_leaf(layer) -> bool:
    """True when ``layer`` has no children (it runs ops itself instead of delegating to other layers)."""
    return not children_of(layer)


def walk(model, in_shape=None):
    """Yield a :class:`LayerVisit` ``(path, layer, in_shape)`` for ``model`` and every layer inside it, a
    container before its children, children in params-tree order.

    A child named ``None`` (the block of ``Remat``) shares its parent's path: its params are the parent's.

    Args:
        model: a layer.
        in_shape: the model's input shape; when given, each visit carries its layer's input shape
            (inferred with ``out_shape``, nothing is allocated); otherwise ``in_shape`` is None.

    Raises:
        ValueError: ``in_shape`` does not fit the model (the message names the layer path).
    """
    yield from _walk(model, "", in_shape)


def _walk(layer, path, in_shape):
    yield LayerVisit(path, layer, in_shape)
    children = children_of(layer)
    if not children:
        return
    shapes = (None,) * len(children) if in_shape is None else tuple(layer.child_in_shapes(in_shape))
    for (name, child), shape in zip(children, shapes):
        if name is None:
            yield from _walk(child, path, shape)
            continue
        with child_errors(name, child):
            yield from _walk(child, f"{path}/{name}" if path else str(name), shape)


def param_labels(model, params, label):
    """A tree with the structure of ``params`` holding ``label(path, layer, name)`` for each params leaf.

    ``path`` is the leaf's path in ``params`` (``"0/weight"``), ``layer`` the leaf layer of ``model`` that
    owns it, and ``name`` its path inside that layer's own params (``"weight"``).  The result feeds
    ``fnnet.optim.masked`` (bools), ``fnnet.optim.multi_transform`` (strings) or ``adamw(mask=...)``.

    Args:
        model: a layer.
        params: its params tree (from ``model.init``).
        label: a function ``(path, layer, name) -> label``.

    Raises:
        ValueError: ``params`` lack a layer's entry, or hold a leaf that belongs to no layer of ``model``.

    Example: a smaller learning rate for the embeddings::

        labels = fnnet.layers.param_labels(model, params,
                                           lambda path, layer, name: "slow" if layer.integer_input else "fast")
    """
    where = "fnnet.layers.param_labels"
    owners = {}
    for path, layer, _ in walk(model):
        if not is_leaf(layer):
            continue
        try:
            own = tree.get(params, path)
        except KeyError:
            raise ValueError(f"{where}: params have no entry {path!r} for the {type(layer).__name__} at that path; "
                             "pass the params made by this model's init") from None
        for name in tree.paths(own):
            owners[f"{path}/{name}" if path and name else path or name] = (layer, name)

    def one(path, leaf):
        if path not in owners:
            raise ValueError(f"{where}: params leaf {path!r} belongs to no layer of the model; pass the params "
                             "made by this model's init")
        layer, name = owners[path]
        return label(path, layer, name)

    return tree.map_with_path(one, params)


def decay_mask(model, params):
    """A tree of bools shaped like ``params``: True where weight decay should apply.

    Each layer decides through its ``no_decay_params`` attribute (biases by default; normalisation layers
    also list their scale), so a LayerNorm ``weight`` is not decayed while a Linear ``weight`` is.

    Example::

        opt = fnnet.optim.adamw(1e-3, weight_decay=0.1, mask=fnnet.layers.decay_mask(model, params))
    """
    return param_labels(model, params, lambda path, layer, name: name not in getattr(
        layer, "no_decay_params", Layer.no_decay_params))
