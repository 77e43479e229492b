"""Reduction kernels over a contiguous ``(outer, reduced, inner)`` view: sum/mean and max, with backwards.

The caller (``fnnet.ops.reduce``) turns any ``axis`` argument into this 3-D view, so one kernel serves every
reduction.  Work is split into fixed tasks that depend only on the shape, never on the thread count:

* the reduced axis is cut into chunks of ``rows`` rows (about ``CHUNK`` elements per task, at least
  ``MIN_ROWS`` rows so that the partials stay small when ``inner`` is large),
* the inner axis is cut into blocks of ``INNER_BLOCK`` columns,
* each task writes its own partial, and the partials of one output element are combined serially in
  chunk order.

Sums accumulate in float64 (also for float32 data) and are cast to the input dtype at the end, so a
float32 sum of 10M elements is both accurate and bit-identical whatever the number of threads.
"""

import numpy as np
from numba import prange

from ._jit import kernel

__all__ = ["sum_3d", "broadcast_3d", "max_3d", "max_3d_bwd"]

CHUNK = 4096
MIN_ROWS = 16
INNER_BLOCK = 1024


@kernel(parallel=False)
def _rows_per_chunk(r, inner):
    """Rows of the reduced axis handled by one task (depends on the shape only)."""
    rows = CHUNK // max(inner, 1)
    if rows < MIN_ROWS:
        rows = MIN_ROWS
    return max(min(rows, r), 1)


@kernel(reduction=True)
def sum_3d(x, scale):
    """``out[o, j] = scale * sum_k x[o, k, j]`` for ``x (outer, r, inner)``; ``out (outer, inner)``.

    ``r == 0`` gives ``0 * scale``.  Accumulates in float64; deterministic (see the module docstring).
    """
    outer, r, inner = x.shape
    rows = _rows_per_chunk(r, inner)
    nchunks = (r + rows - 1) // rows
    nblocks = (inner + INNER_BLOCK - 1) // INNER_BLOCK
    partial = np.zeros((outer, nchunks, inner), dtype=np.float64)
    per_outer = nchunks * nblocks
    for t in prange(outer * per_outer):
        o = t // per_outer
        c = (t - o * per_outer) // nblocks
        b = t - o * per_outer - c * nblocks
        k0 = c * rows
        k1 = min(r, k0 + rows)
        if inner == 1:
            acc = 0.0
            for k in range(k0, k1):
                acc += x[o, k, 0]
            partial[o, c, 0] = acc
        else:
            j0 = b * INNER_BLOCK
            j1 = min(inner, j0 + INNER_BLOCK)
            for k in range(k0, k1):
                for j in range(j0, j1):
                    partial[o, c, j] += x[o, k, j]
    out = np.empty((outer, inner), dtype=x.dtype)
    for t in prange(outer * inner):
        o = t // inner
        j = t - o * inner
        acc = 0.0
        for c in range(nchunks):
            acc += partial[o, c, j]
        out[o, j] = acc * scale
    return out


@kernel
def broadcast_3d(g, r, scale):
    """Backward of ``sum_3d``: ``out[o, k, j] = scale * g[o, j]``; ``g (outer, inner)``, ``out (outer, r, inner)``."""
    outer, inner = g.shape
    out = np.empty((outer, r, inner), dtype=g.dtype)
    for t in prange(outer * r):
        o = t // r
        k = t - o * r
        for j in range(inner):
            out[o, k, j] = g[o, j] * scale
    return out


@kernel
def max_3d(x):
    """``out[o, j] = max_k x[o, k, j]`` for ``x (outer, r, inner)`` with ``r >= 1``; NaN propagates."""
    outer, r, inner = x.shape
    rows = _rows_per_chunk(r, inner)
    nchunks = (r + rows - 1) // rows
    nblocks = (inner + INNER_BLOCK - 1) // INNER_BLOCK
    partial = np.empty((outer, nchunks, inner), dtype=x.dtype)
    per_outer = nchunks * nblocks
    for t in prange(outer * per_outer):
        o = t // per_outer
        c = (t - o * per_outer) // nblocks
        b = t - o * per_outer - c * nblocks
        k0 = c * rows
        k1 = min(r, k0 + rows)
        j0 = b * INNER_BLOCK
        j1 = min(inner, j0 + INNER_BLOCK)
        for j in range(j0, j1):
            partial[o, c, j] = x[o, k0, j]
        for k in range(k0 + 1, k1):
            for j in range(j0, j1):
                v = x[o, k, j]
                if v > partial[o, c, j] or v != v:
                    partial[o, c, j] = v
    out = np.empty((outer, inner), dtype=x.dtype)
    for t in prange(outer * inner):
        o = t // inner
        j = t - o * inner
        m = partial[o, 0, j]
        for c in range(1, nchunks):
            v = partial[o, c, j]
            if v > m or v != v:
                m = v
        out[o, j] = m
    return out


@kernel
def max_3d_bwd(x, y, g):
    """Backward of ``max_3d``: ``g[o, j]`` split equally among the ``k`` where ``x[o, k, j] == y[o, j]``.

    ``x (outer, r, inner)``, ``y``/``g (outer, inner)``; returns ``(outer, r, inner)``.  A NaN maximum
    matches nothing, so its gradient is zero.
    """
    outer, r, inner = x.shape
    rows = _rows_per_chunk(r, inner)
    nchunks = (r + rows - 1) // rows
    nblocks = (inner + INNER_BLOCK - 1) // INNER_BLOCK
    counts = np.zeros((outer, nchunks, inner), dtype=np.int64)
    per_outer = nchunks * nblocks
    for t in prange(outer * per_outer):
        o = t // per_outer
        c = (t - o * per_outer) // nblocks
        b = t - o * per_outer - c * nblocks
        k0 = c * rows
        k1 = min(r, k0 + rows)
        j0 = b * INNER_BLOCK
        j1 = min(inner, j0 + INNER_BLOCK)
        for k in range(k0, k1):
            for j in range(j0, j1):
                if x[o, k, j] == y[o, j]:
                    counts[o, c, j] += 1
    share = np.zeros((outer, inner), dtype=g.dtype)
    for t in prange(outer * inner):
        o = t // inner
        j = t - o * inner
        n = 0
        for c in range(nchunks):
            n += counts[o, c, j]
        if n > 0:
            share[o, j] = g[o, j] / n
    out = np.empty_like(x)
    for t in prange(outer * r):
        o = t // r
        k = t - o * r
        for j in range(inner):
            out[o, k, j] = share[o, j] if x[o, k, j] == y[o, j] else 0.0
    return out
