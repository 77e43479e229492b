"""The softmax family: ``softmax``, ``log_softmax`` and ``logsumexp`` over one axis.

The kernels (``fnnet.kernels.softmax``) work on contiguous rows with the normalised axis last.  For
``axis=-1`` (the usual case) that is a free reshape; any other axis is moved last with one transposing
copy on the way in, and the result moved back with another (so the output is C-contiguous either way).
All three subtract the row maximum before ``exp``: logits of +-1000 give finite results.  The VJPs read the
saved outputs: softmax ``y * (g - sum(g * y))``, log_softmax ``g - exp(y) * sum(g)``, logsumexp
``g * exp(x - lse)``.
"""

from __future__ import annotations

import math

import numpy as np

from .. import kernels as K
from ..autodiff import primitive
from ..autodiff.batching import axis_batching
from ._validate import check_float, contiguous, normalize_axis, value

__all__ = ["softmax", "log_softmax", "logsumexp"]


def _to_rows(x, axis):
    """``(rows, n)`` contiguous view/copy of ``x`` with ``axis`` last."""
    if axis != x.ndim - 1:
        x = np.moveaxis(x, axis, -1)
    return contiguous(x).reshape(math.prod(x.shape[:-1]), x.shape[-1])


def _from_rows(y2, shape, axis):
    """Inverse of ``_to_rows``: rows ``(rows, n)`` back to ``shape``."""
    if len(shape) == 0:
        return y2.reshape(())
    moved = shape[:axis] + shape[axis + 1:] + (shape[axis],)
    y = y2.reshape(moved)
    if axis != len(shape) - 1:
        y = np.ascontiguousarray(np.moveaxis(y, -1, axis))
    return y


def _rowwise(name, fwd_kernel, bwd_kernel):
    """Register a shape-preserving row op whose VJP reads the saved output."""

    def fwd(x, axis):
        y2 = fwd_kernel(_to_rows(x, axis))
        return _from_rows(y2, x.shape, axis), y2

    def bwd(y2, g, axis):
        return (_from_rows(bwd_kernel(y2, _to_rows(g, axis)), g.shape, axis),)

    return primitive(name, fwd, bwd, argnames=("x",))


_softmax = _rowwise("softmax", K.softmax_fwd, K.softmax_bwd)
_log_softmax = _rowwise("log_softmax", K.log_softmax_fwd, K.log_softmax_bwd)


def _logsumexp_fwd(x, axis, keepdims):
    x2 = _to_rows(x, axis)
    lse = K.logsumexp_fwd(x2)
    kept = x.shape[:axis] + x.shape[axis + 1:]
    out_shape = x.shape[:axis] + (1,) + x.shape[axis + 1:] if keepdims else kept
    return lse.reshape(out_shape), (x2, lse, x.shape)


def _logsumexp_bwd(res, g, axis, keepdims):
    x2, lse, shape = res
    g2 = K.logsumexp_bwd(x2, lse, contiguous(g).reshape(-1))
    return (_from_rows(g2, shape, axis),)


_logsumexp = primitive("logsumexp", _logsumexp_fwd, _logsumexp_bwd, argnames=("x",))


def _check(op, x, axis):
    """(the checked x, its normalised axis)"""
    x = check_float(op, "x", x)
    v = value(x)
    if v.ndim == 0:
        raise ValueError(f"{op}: x must have at least 1 dimension, got a 0-d array; reshape it to (1,)")
    return x, normalize_axis(op, axis, v.ndim)


def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x), axis)``, computed stably (the maximum is subtracted first).

    Args:
        x: float16/float32/float64 array, at least 1-D, ``(..., n, ...)``.
        axis: the normalised axis (int, negative counts from the end).  A non-last axis costs two
            transposing copies.

    Returns:
        ``x``'s shape and dtype; every slice along ``axis`` sums to 1.

    Raises:
        TypeError: non-float ``x``, non-int ``axis``.
        ValueError: 0-d ``x``, ``axis`` out of range.
    """
    x, axis = _check("softmax", x, axis)
    return _softmax(x, axis=axis)


def log_softmax(x, axis=-1):
    """``x - logsumexp(x, axis, keepdims=True)``, computed stably; arguments as in :func:`softmax`."""
    x, axis = _check("log_softmax", x, axis)
    return _log_softmax(x, axis=axis)


def logsumexp(x, axis=-1, keepdims=False):
    """``log(sum(exp(x), axis))``, computed stably.

    Args:
        x: float16/float32/float64 array, at least 1-D.
        axis: the reduced axis (an int).
        keepdims: keep it with size 1.

    Returns:
        ``x.shape`` without ``axis`` (size 1 there with ``keepdims``).  An empty axis gives ``-inf``; a row
        whose maximum is ``+-inf`` gives that maximum.  Gradient: ``softmax(x, axis)`` times the cotangent.

    Raises:
        TypeError: non-float ``x``, non-int ``axis``, non-bool ``keepdims``.
        ValueError: 0-d ``x``, ``axis`` out of range.
    """
    x, axis = _check("logsumexp", x, axis)
    if not isinstance(keepdims, (bool, np.bool_)):
        raise TypeError(f"logsumexp: keepdims expected a bool, got {keepdims!r}")
    return _logsumexp(x, axis=axis, keepdims=bool(keepdims))


# fnnet.vmap: each example's axis, shifted past the batch axis
for _prim in (_softmax, _log_softmax, _logsumexp):
    axis_batching(_prim, lambda p, n: {**p, "axis": p["axis"] + 1})
