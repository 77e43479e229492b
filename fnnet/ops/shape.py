"""Shape ops: ``reshape`` and ``transpose``.

These move no arithmetic, so they have no Numba kernel: ``reshape`` of a contiguous array is a view,
and ``transpose`` returns a strided view that the next op makes contiguous only if it needs to.
Their VJPs are the inverse reshape and the inverse permutation.
"""

from __future__ import annotations

import operator

import numpy as np

from ..autodiff import primitive
from ..autodiff.batching import axis_batching
from ._validate import check_float, value

__all__ = ["reshape", "transpose"]


def _reshape_fwd(x, shape):
    return np.ascontiguousarray(x).reshape(shape), x.shape


_reshape = primitive("reshape", _reshape_fwd, lambda in_shape, g, shape: (g.reshape(in_shape),), argnames=("x",))


def _transpose_fwd(x, axes):
    return np.transpose(x, axes), None


def _transpose_bwd(res, g, axes):
    return (np.transpose(g, np.argsort(axes)),)


_transpose = primitive("transpose", _transpose_fwd, _transpose_bwd, argnames=("x",))


def _ints(op: str, arg: str, items, expected: str) -> tuple:
    """``items`` (an int or a sequence of ints, numpy ints included) as a tuple of Python ints."""
    try:
        seq = (items,) if isinstance(items, (int, np.integer)) else tuple(items)
        if any(isinstance(i, (bool, np.bool_)) for i in seq):
            raise TypeError
        return tuple(operator.index(i) for i in seq)
    except TypeError:
        raise TypeError(f"{op}: {arg} expected {expected}, got {items!r}") from None


def reshape(x, shape):
    """``x`` with a new shape of the same size (one entry may be -1).

    Args:
        x: float16/float32/float64 array (or tracer) of any shape.
        shape: an int or a sequence of ints (no floats: a size is never rounded).

    Raises:
        TypeError: non-float ``x``; ``shape`` not ints.
        ValueError: the sizes differ.
    """
    x = check_float("reshape", "x", x)
    v = value(x)
    shape = _ints("reshape", "shape", shape, "an int or a tuple of ints such as (2, -1)")
    try:
        new = np.broadcast_to(np.empty((), v.dtype), v.shape).reshape(shape).shape
    except ValueError:
        raise ValueError(f"reshape: cannot reshape an array of shape {v.shape} (size {v.size}) into {shape}") from None
    return _reshape(x, shape=new)


def transpose(x, axes=None):
    """Permute the axes of ``x`` (reverse them when ``axes`` is None), like ``np.transpose``.

    Args:
        x: float16/float32/float64 array (or tracer) ``(d_0, ..., d_{n-1})``.
        axes: None or a permutation of ``0..n-1`` (negative entries count from the end).

    Returns:
        ``(d_axes[0], ..., d_axes[n-1])``, a view.

    Raises:
        TypeError: non-float ``x``; ``axes`` not ints.
        ValueError: an axis out of range, repeated, or not ``n`` of them.
    """
    x = check_float("transpose", "x", x)
    v = value(x)
    n = v.ndim
    if axes is None:
        return _transpose(x, axes=tuple(range(n))[::-1])
    axes = _ints("transpose", "axes", axes, "None or a tuple of ints (a permutation of the axes)")
    for a in axes:
        if not -n <= a < n:
            raise ValueError(f"transpose: axis {a} is out of range for shape {v.shape} ({n} axes); use axes in "
                             f"[{-n}, {n - 1}]")
    axes = tuple(a % n for a in axes)
    if sorted(axes) != list(range(n)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {n} axes of shape {v.shape}; "
                         f"give each of 0..{n - 1} once")
    return _transpose(x, axes=axes)


# fnnet.vmap: the batch axis stays first
axis_batching(_reshape, lambda p, n: {"shape": (n, *p["shape"])})
axis_batching(_transpose, lambda p, n: {"axes": (0, *(a + 1 for a in p["axes"]))})
