"""Indexing kernels: the scatter-add that is the backward of every gather (advanced indexing, take).

The forward of a gather is pure data movement and is left to numpy; its backward must ADD the
cotangents of repeated indices, which a parallel loop over the cotangent rows cannot do without races.
``scatter_add_rows`` therefore groups the cotangent rows by destination first (a stable counting sort,
serial and cheap: integers only), then lets each destination row sum its own contributions in parallel.
Every destination adds its terms in ascending source order, so the result is the same bits whatever the
number of threads.
"""

import numpy as np
from numba import prange

from ._jit import kernel

__all__ = ["scatter_add_rows", "index_range"]

ROW_BLOCK = 256


@kernel(parallel=False)
def index_range(index):
    """``(smallest, largest)`` of a non-empty integer array, in one serial pass (the range checks of
    labels and indices run on every call, so they must cost less than NumPy's two reductions)."""
    lo = hi = index.flat[0]
    for v in index.flat:
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    return lo, hi


@kernel
def scatter_add_rows(index, g, n_rows):
    """``out[index[i]] += g[i]`` for every ``i``, repeats accumulated.

    Args: ``index (m,)`` int64 in ``[0, n_rows)`` (validated by the caller), ``g (m, row)``.
    Returns: ``(n_rows, row)`` in ``g``'s dtype; rows that no index names are zero.  Sums of several
    terms accumulate in float64.
    """
    m, row = g.shape
    starts = np.zeros(n_rows + 1, dtype=np.int64)
    for i in range(m):
        starts[index[i] + 1] += 1
    for t in range(n_rows):
        starts[t + 1] += starts[t]
    fill = starts[:n_rows].copy()
    order = np.empty(m, dtype=np.int64)
    for i in range(m):
        t = index[i]
        order[fill[t]] = i
        fill[t] += 1
    out = np.zeros((n_rows, row), dtype=g.dtype)
    for t in prange(n_rows):
        p0 = starts[t]
        p1 = starts[t + 1]
        if p1 - p0 == 1:
            i = order[p0]
            for j in range(row):
                out[t, j] = g[i, j]
        elif p1 - p0 > 1:
            if row == 1:
                acc = 0.0
                for p in range(p0, p1):
                    acc += g[order[p], 0]
                out[t, 0] = acc
            else:
                buf = np.empty(min(row, ROW_BLOCK), dtype=np.float64)
                for j0 in range(0, row, ROW_BLOCK):
                    j1 = min(row, j0 + ROW_BLOCK)
                    for j in range(j1 - j0):
                        buf[j] = 0.0
                    for p in range(p0, p1):
                        i = order[p]
                        for j in range(j0, j1):
                            buf[j - j0] += g[i, j]
                    for j in range(j0, j1):
                        out[t, j] = buf[j - j0]
    return out
