"""Shape ops: ``reshape`` and ``transpose``.

These move no arithmetic, so they have no Numba kernel: ``reshape`` of a contiguous array is a view,
and ``transpose`` returns a strided view that the next op makes contiguous only if it needs to.
Their VJPs are the inverse reshape and the inverse permutation.
"""

from __future__ import annotations

import numpy as np

from ..autodiff import primitive
from ._validate import value

__all__ = ["reshape", "transpose"]


def _reshape_fwd(x, shape):
    return np.ascontiguousarray(x).reshape(shape), x.shape


_reshape = primitive("reshape", _reshape_fwd, lambda in_shape, g, shape: (g.reshape(in_shape),), argnames=("x",))


def _transpose_fwd(x, axes):
    return np.transpose(x, axes), None


def _transpose_bwd(res, g, axes):
    return (np.transpose(g, np.argsort(axes)),)


_transpose = primitive("transpose", _transpose_fwd, _transpose_bwd, argnames=("x",))


def reshape(x, shape):
    """``x`` with a new shape of the same size (one entry may be -1).

    Raises:
        ValueError: the sizes differ.
    """
    v = value(x)
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    shape = tuple(int(s) for s in shape)
    try:
        new = np.broadcast_to(np.empty((), v.dtype), v.shape).reshape(shape).shape
    except ValueError:
        raise ValueError(f"reshape: cannot reshape an array of shape {v.shape} (size {v.size}) into {shape}") from None
    return _reshape(x, shape=new)


def transpose(x, axes=None):
    """Permute the axes of ``x`` (reverse them when ``axes`` is None), like ``np.transpose``."""
    v = value(x)
    if axes is None:
        axes = tuple(range(v.ndim))[::-1]
    axes = tuple(int(a) % max(v.ndim, 1) for a in axes)
    if sorted(axes) != list(range(v.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {v.ndim} axes of shape {v.shape}")
    return _transpose(x, axes=axes)
