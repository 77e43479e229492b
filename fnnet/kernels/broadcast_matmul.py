"""Batched matrix products whose batch axes broadcast: one BLAS call per output matrix.

The operands are stacks of contiguous matrices, ``a (A, n, k)`` and ``b (B, k, m)``; ``a_index`` and
``b_index`` (int64, one entry per output matrix) say which matrix of each stack output ``i`` uses, so a
broadcast operand is never copied.  The backward sums the cotangents of every output that shares an
operand matrix: ``a_order[a_starts[j]:a_starts[j + 1]]`` lists those outputs for ``a[j]`` in increasing
order, and each sum is done by one loop iteration in that order, so the result does not depend on the
thread count.
"""

import numpy as np
from numba import prange

from ._jit import kernel
from .blas import gemm

__all__ = ["broadcast_matmul_fwd", "broadcast_matmul_bwd"]


@kernel
def broadcast_matmul_fwd(a, b, a_index, b_index):
    """``out[i] = a[a_index[i]] @ b[b_index[i]]``: ``(len(a_index), n, m)``."""
    count = a_index.size
    out = np.empty((count, a.shape[1], b.shape[2]), dtype=a.dtype)
    for i in prange(count):
        gemm(a[a_index[i]], b[b_index[i]], out[i])
    return out


@kernel
def broadcast_matmul_bwd(a, b, g, a_index, b_index, a_order, a_starts, b_order, b_starts, need_a, need_b):
    """Cotangents of :func:`broadcast_matmul_fwd`: ``ga[j] = sum of g[i] @ b[b_index[i]].T`` over the outputs
    ``i`` that read ``a[j]`` (and ``gb[j]`` likewise with ``a[a_index[i]].T @ g[i]``).  An operand that is
    not needed comes back as an empty stack."""
    ga = np.zeros((a.shape[0] if need_a else 0, a.shape[1], a.shape[2]), dtype=a.dtype)
    gb = np.zeros((b.shape[0] if need_b else 0, b.shape[1], b.shape[2]), dtype=b.dtype)
    for j in prange(ga.shape[0]):
        for t in range(a_starts[j], a_starts[j + 1]):
            i = a_order[t]
            gemm(g[i], b[b_index[i]].T, ga[j], 1.0, 0.0 if t == a_starts[j] else 1.0)
    for j in prange(gb.shape[0]):
        for t in range(b_starts[j], b_starts[j + 1]):
            i = b_order[t]
            gemm(a[a_index[i]].T, g[i], gb[j], 1.0, 0.0 if t == b_starts[j] else 1.0)
    return ga, gb
