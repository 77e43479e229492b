"""Embedding lookup kernels: a row gather, and its adjoint, a deterministic scatter-add.

Shapes: ``idx (n,)`` int32/int64, validated to lie in ``[0, num)``; ``table (num, F)``; ``g (n, F)``.

The backward sorts the indices with a stable sort, so equal indices form runs that keep their original
order; ``prange`` goes over fixed blocks of runs, and each run is summed serially (in float64, then cast)
into its own table row.  No two iterations write the same row and the summation order is the order of
the indices, so the result is identical for any thread count.
"""

import numpy as np
from numba import prange

from ._jit import kernel

__all__ = ["embedding_fwd", "embedding_bwd"]

RUN_BLOCK = 64


@kernel
def embedding_fwd(idx, table):
    """``out[i] = table[idx[i]]``: ``(n, F)``."""
    n = idx.shape[0]
    F = table.shape[1]
    out = np.empty((n, F), dtype=table.dtype)
    for i in prange(n):
        row = idx[i]
        for f in range(F):
            out[i, f] = table[row, f]
    return out


@kernel
def embedding_bwd(idx, g, num):
    """``gt[r] = sum of g[i] over i with idx[i] == r`` (in index order): ``(num, F)``."""
    n = idx.shape[0]
    F = g.shape[1]
    gt = np.zeros((num, F), dtype=g.dtype)
    if n == 0:
        return gt
    order = np.argsort(idx, kind="mergesort")  # stable: equal indices stay in their original order
    # run r covers order[starts[r]:starts[r + 1]]
    starts = np.empty(n + 1, dtype=np.int64)
    runs = 0
    for k in range(n):
        if k == 0 or idx[order[k]] != idx[order[k - 1]]:
            starts[runs] = k
            runs += 1
    starts[runs] = n
    nblocks = (runs + RUN_BLOCK - 1) // RUN_BLOCK
    for blk in prange(nblocks):
        acc = np.empty(F, dtype=np.float64)
        for r in range(blk * RUN_BLOCK, min(runs, (blk + 1) * RUN_BLOCK)):
            acc[:] = 0.0
            for k in range(starts[r], starts[r + 1]):
                i = order[k]
                for f in range(F):
                    acc[f] += g[i, f]
            row = idx[order[starts[r]]]
            for f in range(F):
                gt[row, f] = acc[f]
    return gt
