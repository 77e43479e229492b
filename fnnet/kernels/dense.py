"""Dense kernels: matrix products through BLAS (:func:`.blas.gemm` inside the kernel), bias and ReLU fused.

Shapes: ``x (n, in)``, ``w (in, out)`` (fnnet's Linear layout), ``b (out,)``, ``y``/``g (n, out)``.
Reductions over the batch (the bias gradient) use fixed row chunks combined in index order, so the
result does not depend on the number of threads.
"""

import numpy as np
from numba import prange

from ._jit import helper, kernel
from .blas import gemm

ROW_CHUNK = 256
#: Rows per BLAS call in prange: a function of the row count only, never of the thread count, so results
#: never depend on it.  Each call packs the whole right-hand matrix again, so large inputs take larger
#: blocks (2048 x 128 -> 384: forward 2.0 -> 1.7 ms, 512 outputs 2.6 -> 2.1 ms with 256-row blocks); small
#: ones keep 64-row blocks so that both threads still get work.
ROW_BLOCK = 64
LARGE_ROW_BLOCK = 256
LARGE_ROWS = 1024
#: The weight gradient x.T @ g is split into this many row blocks (a constant, like ROW_BLOCK): a few large
#: GEMMs were measured faster than many 64-row ones (0.37 vs 0.50 ms for 128x784 by 256).
WEIGHT_BLOCKS = 2


@helper
def _row_block(n):
    return LARGE_ROW_BLOCK if n >= LARGE_ROWS else ROW_BLOCK


@kernel
def linear_fwd(x, w, b, has_bias, relu):
    """y = x @ w (+ b) (then max(., 0) when ``relu``).

    Rows are split into fixed blocks (``_row_block``), one single-threaded BLAS call per block inside
    ``prange``, with the bias and ReLU applied to the block while it is in cache."""
    n = x.shape[0]
    m = w.shape[1]
    y = np.empty((n, m), dtype=x.dtype)
    block = _row_block(n)
    for blk in prange((n + block - 1) // block):
        r0 = blk * block
        r1 = min(n, r0 + block)
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
    block = _row_block(n)
    x_blocks = (n + block - 1) // block if need_x else 0
    w_blocks = min(WEIGHT_BLOCKS, k) if need_w else 0
    w_rows = (k + WEIGHT_BLOCKS - 1) // WEIGHT_BLOCKS
    wt = w.T
    for blk in prange(x_blocks):  # two loops, each of equal-cost blocks, so both threads stay busy
        r0 = blk * block
        r1 = min(n, r0 + block)
        gemm(g[r0:r1], wt, gx[r0:r1])
    for blk in prange(w_blocks):
        r0 = blk * w_rows
        r1 = min(k, r0 + w_rows)
        gemm(x[:, r0:r1].T, g, gw[r0:r1])
    gb = column_sums(g) if need_b else np.empty(0, dtype=g.dtype)
    return gx, gw, gb


@kernel
def matmul_fwd(a, b):
    """(n, k) @ (k, m), in fixed row blocks (``_row_block``; one single-threaded BLAS call each)."""
    n = a.shape[0]
    y = np.empty((n, b.shape[1]), dtype=a.dtype)
    block = _row_block(n)
    for blk in prange((n + block - 1) // block):
        r0 = blk * block
        r1 = min(n, r0 + block)
        gemm(a[r0:r1], b, y[r0:r1])
    return y
