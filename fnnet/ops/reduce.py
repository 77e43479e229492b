"""Reductions: ``sum``, ``mean`` and ``max`` over any set of axes.

Every reduction is computed on a contiguous ``(outer, reduced, inner)`` view of the input: when the
reduced axes are adjacent this is a free reshape; otherwise the reduced axes are moved last with one
transposing copy.  One kernel family (``fnnet.kernels.reduce``) then serves every ``axis`` argument, and
its fixed chunking makes results bit-identical whatever the thread count.  Sums accumulate in float64.
float16 inputs are storage only: the primitive machinery (``fnnet.autodiff.half``) widens them to
float32 for the kernels and narrows the results.
"""

from __future__ import annotations

import math

import numpy as np

from .. import kernels as K
from ..autodiff import primitive
from ..autodiff.batching import axis_batching
from ._validate import check_float, contiguous, value

__all__ = ["sum", "mean", "max"]


def _normalize_axes(op: str, axis, ndim: int) -> tuple:
    """``axis`` (None, int or sequence of ints) -> sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    items = (axis,) if isinstance(axis, (int, np.integer)) else axis
    if not isinstance(items, (tuple, list)) or isinstance(axis, bool):
        raise TypeError(f"{op}: axis expected None, an int or a tuple of ints, got {axis!r}")
    axes = []
    for a in items:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"{op}: axis expected None, an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < ndim:
            raise ValueError(
                f"{op}: axis {int(a)} is out of range for an array with {ndim} dimension(s); "
                f"use an axis in [{-ndim}, {ndim - 1}]" if ndim else
                f"{op}: axis {int(a)} is out of range for a 0-d array; use axis=None"
            )
        axes.append(int(a) % ndim)
    if len(set(axes)) != len(axes):
        raise ValueError(f"{op}: axis {axis!r} names the same axis twice; list each axis once")
    return tuple(sorted(axes))


def _check_keepdims(op: str, keepdims):
    if not isinstance(keepdims, (bool, np.bool_)):
        raise TypeError(f"{op}: keepdims expected a bool, got {keepdims!r}")
    return bool(keepdims)


def _plan(shape: tuple, axes: tuple):
    """``(perm, outer, reduced, inner)``: ``perm`` is None when the reduced axes are adjacent (a free
    reshape), else the permutation that moves them last."""
    if not axes:
        return None, math.prod(shape), 1, 1
    first, last = axes[0], axes[-1]
    if axes == tuple(range(first, last + 1)):
        return None, math.prod(shape[:first]), math.prod(shape[first:last + 1]), math.prod(shape[last + 1:])
    kept = tuple(i for i in range(len(shape)) if i not in axes)
    return kept + axes, math.prod(shape[i] for i in kept), math.prod(shape[i] for i in axes), 1


def _to_3d(x, plan):
    perm, outer, r, inner = plan
    if perm is not None:
        x = np.ascontiguousarray(np.transpose(x, perm))
    return contiguous(x).reshape(outer, r, inner)


def _from_3d(g3, shape, plan):
    """Inverse of ``_to_3d`` for a cotangent ``(outer, r, inner)`` -> ``shape``."""
    perm = plan[0]
    if perm is None:
        return g3.reshape(shape)
    moved = g3.reshape(tuple(shape[p] for p in perm))
    return np.ascontiguousarray(np.transpose(moved, np.argsort(perm)))


def _out_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def _sum_fwd(x, axes, keepdims, scale_by_count):
    plan = _plan(x.shape, axes)
    r = plan[2]
    scale = (1.0 / r if r else math.nan) if scale_by_count else 1.0
    y = K.sum_3d(_to_3d(x, plan), scale)
    return y.reshape(_out_shape(x.shape, axes, keepdims)), (x.shape, plan, scale)


def _sum_bwd(res, g, axes, keepdims, scale_by_count):
    shape, plan, scale = res
    _, outer, r, inner = plan
    g3 = K.broadcast_3d(contiguous(g).reshape(outer, inner), r, g.dtype.type(scale))
    return (_from_3d(g3, shape, plan),)


_sum = primitive("sum", lambda x, axes, keepdims: _sum_fwd(x, axes, keepdims, False),
                 lambda res, g, axes, keepdims: _sum_bwd(res, g, axes, keepdims, False), argnames=("x",))
_mean = primitive("mean", lambda x, axes, keepdims: _sum_fwd(x, axes, keepdims, True),
                  lambda res, g, axes, keepdims: _sum_bwd(res, g, axes, keepdims, True), argnames=("x",))


def _max_fwd(x, axes, keepdims):
    plan = _plan(x.shape, axes)
    _, outer, r, inner = plan
    out_shape = _out_shape(x.shape, axes, keepdims)
    if outer * inner == 0:  # nothing to compute (the reduced axis may be empty too, as in numpy)
        return np.empty(out_shape, dtype=x.dtype), (x.shape, plan, None, None)
    x3 = _to_3d(x, plan)
    y = K.max_3d(x3)
    return y.reshape(out_shape), (x.shape, plan, x3, y)


def _max_bwd(res, g, axes, keepdims):
    shape, plan, x3, y = res
    if x3 is None:
        return (np.zeros(shape, dtype=g.dtype),)
    _, outer, r, inner = plan
    g3 = K.max_3d_bwd(x3, y, contiguous(g).reshape(outer, inner))
    return (_from_3d(g3, shape, plan),)


_max = primitive("max", _max_fwd, _max_bwd, argnames=("x",))


def _prepare(op, x, axis, keepdims):
    x = check_float(op, "x", x)
    axes = _normalize_axes(op, axis, value(x).ndim)
    return x, axes, _check_keepdims(op, keepdims)


def sum(x, axis=None, keepdims=False):  # noqa: A001  (mirrors numpy's name)
    """Sum of ``x`` over ``axis``.

    Args:
        x: float16/float32/float64 array of any shape ``(d_0, ..., d_{n-1})``.
        axis: None (every axis), an int, or a tuple of distinct ints; negative values count from the end.
        keepdims: keep the reduced axes with size 1.

    Returns:
        The shape of ``x`` without the reduced axes (with size-1 axes instead when ``keepdims``), ``x``'s
        dtype.  A sum over an empty axis is 0.  Accumulated in float64; the result does not depend on the
        number of threads.

    Raises:
        TypeError: ``x`` is not a float16/float32/float64 array, or ``axis``/``keepdims`` has the wrong type.
        ValueError: an axis is out of range or repeated.
    """
    x, axes, keepdims = _prepare("sum", x, axis, keepdims)
    return _sum(x, axes=axes, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    """Arithmetic mean of ``x`` over ``axis``; arguments, shapes and errors as in :func:`sum`.

    The mean over an empty axis is NaN, as in numpy and PyTorch.
    """
    x, axes, keepdims = _prepare("mean", x, axis, keepdims)
    return _mean(x, axes=axes, keepdims=keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001  (mirrors numpy's name)
    """Maximum of ``x`` over ``axis``; arguments and shapes as in :func:`sum`.

    Gradient: when several elements tie for the maximum, the output's cotangent is split equally among
    them (the rule of ``torch.amax``).  NaN propagates to the result, and a NaN maximum passes no
    gradient.

    Raises:
        TypeError, ValueError: as for :func:`sum`; also ValueError for a maximum over an empty axis
            (max has no identity; numpy raises too).
    """
    x, axes, keepdims = _prepare("max", x, axis, keepdims)
    shape = value(x).shape
    if math.prod(shape[a] for a in axes) == 0:
        raise ValueError(
            f"max: cannot take the maximum over an empty axis (x.shape={shape}, axis={axis!r}): it has no "
            "identity; check the shape, or use sum for an empty-safe reduction"
        )
    return _max(x, axes=axes, keepdims=keepdims)


# fnnet.vmap: reduce each example over its own axes (shifted past the batch axis)
for _prim in (_sum, _mean, _max):
    axis_batching(_prim, lambda p, n: {**p, "axes": tuple(a + 1 for a in p["axes"])})
