"""Reductions: sum, mean, max (torch.sum / torch.mean / torch.amax).

Max rows use continuous random data, so no ties (ties have a dedicated test in tests/test_ops_errors.py).
"""

import numpy as np

import fnnet.ops as ops

from ._case import OpCase, rand


def _dim(t, axis):
    """torch's ``dim`` for a numpy ``axis``: every axis when None (torch takes keepdim only with a dim)."""
    return tuple(range(t.ndim)) if axis is None else axis


# (id suffix, shape, axis, keepdims)
_SETTINGS = [
    ("all", (3, 4), None, False),
    ("all-keepdims", (2, 3, 2), None, True),
    ("axis0", (3, 4), 0, False),
    ("axis-1", (2, 3, 4), -1, False),
    ("axis1-keepdims", (2, 3, 4), 1, True),
    ("axes01-adjacent", (2, 3, 4), (0, 1), False),
    ("axes-1-3-nonadjacent", (2, 3, 4, 2), (-1, 1), False),
    ("axes02-keepdims", (2, 3, 4), (0, 2), True),
    ("size1-dims", (1, 4, 1), 1, False),
    ("size1-axis", (3, 1, 2), 1, True),
    ("batch1", (1, 5), -1, False),
    ("vector", (7,), 0, False),
    ("long-axis", (2, 5000), 1, False),
]

CASES = []
for suffix, shape, axis, keepdims in _SETTINGS:
    x = rand(*shape, seed=len(shape))

    def fwd(op, axis=axis, keepdims=keepdims):
        return lambda x: op(x, axis=axis, keepdims=keepdims)

    CASES += [
        OpCase(f"sum-{suffix}", fwd(ops.sum), (x,), ("sum",),
               numpy_ref=lambda x, axis=axis, keepdims=keepdims: np.sum(x, axis=axis, keepdims=keepdims),
               torch_ref=lambda t, axis=axis, keepdims=keepdims: t.sum(dim=_dim(t, axis), keepdim=keepdims)),
        OpCase(f"mean-{suffix}", fwd(ops.mean), (x,), ("mean",),
               numpy_ref=lambda x, axis=axis, keepdims=keepdims: np.mean(x, axis=axis, keepdims=keepdims),
               torch_ref=lambda t, axis=axis, keepdims=keepdims: t.mean(dim=_dim(t, axis), keepdim=keepdims)),
        OpCase(f"max-{suffix}", fwd(ops.max), (x,), ("max",),
               numpy_ref=lambda x, axis=axis, keepdims=keepdims: np.max(x, axis=axis, keepdims=keepdims),
               torch_ref=lambda t, axis=axis, keepdims=keepdims: t.amax(dim=_dim(t, axis), keepdim=keepdims)),
    ]

CASES += [
    OpCase("sum-empty-tuple-axis", lambda x: ops.sum(x, axis=()), (rand(2, 3),), ("sum",),
           numpy_ref=lambda x: np.sum(x, axis=())),
    OpCase("sum-empty-axis-gives-zero", lambda x: ops.sum(x, axis=1), (np.zeros((3, 0)),), ("sum",),
           numpy_ref=lambda x: np.sum(x, axis=1), torch_ref=lambda t: t.sum(dim=1)),
]

