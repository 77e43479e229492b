"""``walk``: the one way to visit every layer of a model.

Every reader of a model's structure (``fnnet.summary``, ``fnnet.precompile``, activation recording,
``fnnet.io.load_torch_state_dict``, the tests) walks it with :func:`walk`, which asks each layer for its
``children()``, so they agree on what a container is.  ::

    for path, layer, in_shape in fnnet.layers.walk(model, (None, 1, 28, 28)):
        print(path or "(model)", type(layer).__name__, in_shape)
"""

from __future__ import annotations

from typing import NamedTuple

from .base import child_errors

__all__ = ["walk", "children_of", "is_leaf", "LayerVisit"]


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
