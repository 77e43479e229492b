"""Splitting an array into pieces along one axis: ``split`` (numpy's rules) and ``chunk`` (PyTorch's).

Each piece is a basic slice taken with :func:`~fnnet.ops.getitem`, so the pieces are views and each one's
VJP writes its cotangent into zeros of the input's shape (the tape adds the pieces' contributions).  A
piece that no loss depends on costs nothing in the backward.
"""

from __future__ import annotations

import math
import operator

import numpy as np

from ._validate import check_float, normalize_axis, value
from .indexing import getitem

__all__ = ["split", "chunk"]


def _pieces(x, axis, bounds):
    """``[x[..., start:stop, ...] for (start, stop) in bounds]`` along ``axis``."""
    lead = (slice(None),) * axis
    return [getitem(x, lead + (slice(start, stop),)) for start, stop in bounds]


def _checked(op, x, axis):
    x = check_float(op, "x", x)
    v = value(x)
    if v.ndim == 0:
        raise ValueError(f"{op}: x must have at least 1 dimension, got a 0-d array; reshape it to (1,) first")
    return x, v.shape, normalize_axis(op, axis, v.ndim)


def _positive_count(op, name, n):
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{op}: {name} expected a positive int, got {n!r}")
    if n < 1:
        raise ValueError(f"{op}: {name} must be a positive int, got {n}")
    return int(n)


def split(x, indices_or_sections, axis=0):
    """Split ``x`` into pieces along ``axis``, like ``np.split``.

    Args:
        x: float array (or tracer) of at least 1 dimension.
        indices_or_sections: an int ``s``: ``s`` equal pieces (``s`` must divide the axis); or a sequence of
            ints: the split points, ``x[:i0], x[i0:i1], ..., x[i_last:]`` along ``axis`` (slice rules: negative
            points count from the end, points past the end give empty pieces).
        axis: the axis to split (negative counts from the end).

    Returns:
        A list of arrays (views of ``x``); their sizes along ``axis`` add up to ``x``'s.

    Raises:
        TypeError: non-float ``x``; ``indices_or_sections`` or ``axis`` not ints.
        ValueError: a 0-d ``x``, ``axis`` out of range, a section count below 1 or not dividing the axis.
    """
    x, shape, axis = _checked("split", x, axis)
    n = shape[axis]
    if isinstance(indices_or_sections, (int, np.integer)) and not isinstance(indices_or_sections, (bool, np.bool_)):
        sections = _positive_count("split", "indices_or_sections", indices_or_sections)
        if n % sections:
            raise ValueError(f"split: {sections} sections do not divide axis {axis} of size {n} (x.shape={shape}) "
                             "into equal pieces; use chunk(x, sections, axis) for a smaller last piece, or pass "
                             "a list of split points")
        size = n // sections
        return _pieces(x, axis, [(i * size, (i + 1) * size) for i in range(sections)])
    points = _split_points(indices_or_sections)
    return _pieces(x, axis, list(zip([None, *points], [*points, None])))


def _split_points(items) -> list:
    """A sequence of split points as Python ints (bools and floats rejected)."""
    try:
        points = list(items)
        if any(isinstance(i, (bool, np.bool_)) for i in points):
            raise TypeError
        return [operator.index(i) for i in points]
    except TypeError:
        raise TypeError(f"split: indices_or_sections expected an int or a sequence of ints, got {items!r}") from None


def chunk(x, chunks, axis=0):
    """Split ``x`` into at most ``chunks`` pieces along ``axis``, like ``torch.chunk``.

    Every piece has ``ceil(n / chunks)`` elements along the axis except the last, which may be smaller; so
    fewer than ``chunks`` pieces come back when that size runs out first (``n = 6, chunks = 4`` gives three
    pieces of 2).  An axis of size 0 gives ``chunks`` empty pieces.

    Args:
        x: float array (or tracer) of at least 1 dimension.
        chunks: a positive int.
        axis: the axis to split (negative counts from the end).

    Returns:
        A list of arrays (views of ``x``).

    Raises:
        TypeError: non-float ``x``; ``chunks`` or ``axis`` not an int.
        ValueError: a 0-d ``x``, ``axis`` out of range, ``chunks < 1``.

    Example: the query, key and value of an attention layer from one projection::

        q, k, v = fnnet.ops.chunk(fnnet.ops.linear(x, w_qkv), 3, axis=-1)
    """
    x, shape, axis = _checked("chunk", x, axis)
    chunks = _positive_count("chunk", "chunks", chunks)
    n = shape[axis]
    if n == 0:
        return _pieces(x, axis, [(0, 0)] * chunks)
    size = math.ceil(n / chunks)
    return _pieces(x, axis, [(start, min(start + size, n)) for start in range(0, n, size)])
