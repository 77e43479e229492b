"""Dense kernels: matrix products through BLAS (:func:`.blas.gemm` inside the kernel), bias and ReLU fused.

Shapes: ``x (n, in)``, ``w (in, out)`` (fnnet's Linear layout), ``b (out,)``, ``y``/``g (n, out)``.
Reductions over the batch (the bias gradient) use fixed row chunks combined in index order, so the
result does not depend on the number of threads.
"""

import numpy as np
from numba import prange

from ._jit import kernel
from .blas import gemm

ROW_CHUNK = 256
ROW_BLOCK = 64  # rows per BLAS call in prange: fixed, so results never depend on the thread count
#: The weight gradient x.T @ g is split into this many row blocks (a constant, like ROW_BLOCK): a few large
#: GEMMs were measured faster than many 64-row ones (0.37 vs 0.50 ms for 128x784 by 256).
WEIGHT_BLOCKS = 2


@kernel
def linear_fwd(x, w, b, has_bias, relu):
    """y = x @ w (+ b) (then max(., 0) when ``relu``).

    Rows are split into fixed blocks of ``ROW_BLOCK``, one single-threaded BLAS call per block inside
    ``prange``, with the bias and ReLU applied to the block while it is in cache."""
    n = x.shape[0]
    m = w.shape[1]
    y = np.empty((n, m), dtype=x.dtype)
    for blk in prange((n + ROW_BLOCK - 1) // ROW_BLOCK):
        r0 = blk * ROW_BLOCK
        r1 = min(n, r0 + ROW_BLOCK)
        gemm(x[r0:r1], w, y[r0:r1])
        if has_bias or relu:
            for i in range(r0, r1):
                for j in range(m):
                    v = y[i, j]
                    if has_bias:
                        v += b[j]
                    if relu and v < 0:
                        v = 0.0
                    y[i, j] = v
    return y


@kernel(reduction=True)
def column_sums(g):
    """Sum of the rows of ``g (n, m)``, deterministic: fixed chunks of rows, combined in order."""
    n, m = g.shape
    nchunks = (n + ROW_CHUNK - 1) // ROW_CHUNK
    partial = np.zeros((max(nchunks, 1), m), dtype=g.dtype)
    for c in prange(nchunks):
        stop = min(n, (c + 1) * ROW_CHUNK)
        for i in range(c * ROW_CHUNK, stop):
            for j in range(m):
                partial[c, j] += g[i, j]
    out = np.zeros(m, dtype=g.dtype)
    for c in range(nchunks):
        for j in range(m):
            out[j] += partial[c, j]
    return out


@kernel
def relu_mask(y, g):
    """0 where y <= 0 else g (the fused ReLU's backward; NaN passes g, like PyTorch), for 2-D arrays."""
    out = np.empty_like(g)
    n, m = g.shape
    for i in prange(n):
        for j in range(m):
            out[i, j] = 0.0 if y[i, j] <= 0 else g[i, j]
    return out


@kernel
def linear_bwd(x, w, g, need_x, need_w, need_b):
    """Cotangents of linear_fwd without activation: (g @ w.T, x.T @ g, column sums of g).

    Both products are split into independent output blocks (rows of ``gx``, rows of ``gw``), so no block
    sums partial results and the answer does not depend on the thread count.  Unneeded results come back
    as empty arrays."""
    n, k = x.shape
    m = g.shape[1]
    gx = np.empty((n if need_x else 0, k), dtype=g.dtype)
    gw = np.empty((k if need_w else 0, m), dtype=g.dtype)
    x_blocks = (n + ROW_BLOCK - 1) // ROW_BLOCK if need_x else 0
    w_blocks = min(WEIGHT_BLOCKS, k) if need_w else 0
    w_rows = (k + WEIGHT_BLOCKS - 1) // WEIGHT_BLOCKS
    wt = w.T
    for blk in prange(x_blocks):  # two loops, each of equal-cost blocks, so both threads stay busy
        r0 = blk * ROW_BLOCK
        r1 = min(n, r0 + ROW_BLOCK)
        gemm(g[r0:r1], wt, gx[r0:r1])
    for blk in prange(w_blocks):
        r0 = blk * w_rows
        r1 = min(k, r0 + w_rows)
        gemm(x[:, r0:r1].T, g, gw[r0:r1])
    gb = column_sums(g) if need_b else np.empty(0, dtype=g.dtype)
    return gx, gw, gb


@kernel
def matmul_fwd(a, b):
    """(n, k) @ (k, m), in fixed row blocks of ``ROW_BLOCK`` (one single-threaded BLAS call each)."""
    n = a.shape[0]
    y = np.empty((n, b.shape[1]), dtype=a.dtype)
    for blk in prange((n + ROW_BLOCK - 1) // ROW_BLOCK):
        r0 = blk * ROW_BLOCK
        r1 = min(n, r0 + ROW_BLOCK)
        gemm(a[r0:r1], b, y[r0:r1])
    return y
