"""Dense kernels: matrix products through BLAS (:func:`.blas.gemm` inside the kernel), bias and ReLU fused.

Shapes: ``x (n, in)``, ``w (in, out)`` (fnnet's Linear layout), ``b (out,)``, ``y``/``g (n, out)``.
Reductions over the batch (the bias gradient) use fixed row chunks combined in index order, so the
result does not depend on the number of threads.
"""

import numpy as np
from numba import prange

from ._jit import SERIAL_WORK, helper, kernel
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
#: ``linear_bwd`` multiplies in the calling thread below this many multiply-adds (n * in * out): a
#: (32, 64) x (64, 64) product takes ~6 us, about what a parallel launch costs.
SERIAL_PRODUCT = 1 << 20


@helper
def _row_block(n):
    return LARGE_ROW_BLOCK if n >= LARGE_ROWS else ROW_BLOCK


@kernel
def linear_fwd(x, w, b, has_bias, relu):
    """y = x @ w (+ b) (then max(., 0) when ``relu``).

    Rows are split into fixed blocks (``_row_block``), one single-threaded BLAS call per block inside
    ``prange``, with the bias and ReLU applied to the block while it is in cache.  A single block runs in
    the calling thread (no parallel launch)."""
    n = x.shape[0]
    y = np.empty((n, w.shape[1]), dtype=x.dtype)
    block = _row_block(n)
    blocks = (n + block - 1) // block
    if blocks <= 1:
        _linear_rows(x, w, b, y, 0, n, has_bias, relu)
    else:
        for blk in prange(blocks):
            _linear_rows(x, w, b, y, blk * block, min(n, blk * block + block), has_bias, relu)
    return y


@helper
def _linear_rows(x, w, b, y, r0, r1, has_bias, relu):
    """Rows ``r0:r1`` of :func:`linear_fwd`."""
    gemm(x[r0:r1], w, y[r0:r1])
    if has_bias or relu:
        for i in range(r0, r1):
            for j in range(y.shape[1]):
                v = y[i, j]
                if has_bias:
                    v += b[j]
                if relu and v < 0:
                    v = 0.0
                y[i, j] = v


@kernel(reduction=True)
def column_sums(g):
    """Sum of the rows of ``g (n, m)``, deterministic: fixed chunks of rows, combined in order."""
    n, m = g.shape
    nchunks = (n + ROW_CHUNK - 1) // ROW_CHUNK
    partial = np.zeros((max(nchunks, 1), m), dtype=g.dtype)
    if nchunks <= 1 or n * m < SERIAL_WORK:
        for c in range(nchunks):
            _sum_rows(g, partial, c)
    else:
        for c in prange(nchunks):
            _sum_rows(g, partial, c)
    out = np.zeros(m, dtype=g.dtype)
    for c in range(nchunks):
        for j in range(m):
            out[j] += partial[c, j]
    return out


@kernel(parallel=False, reduction=True)
def _sum_rows(g, partial, c):
    """``partial[c]`` += the rows of chunk ``c`` of ``g`` (``ROW_CHUNK`` rows)."""
    for i in range(c * ROW_CHUNK, min(g.shape[0], (c + 1) * ROW_CHUNK)):
        for j in range(g.shape[1]):
            partial[c, j] += g[i, j]


@kernel
def relu_mask(y, g):
    """0 where y <= 0 else g (the fused ReLU's backward; NaN passes g, like PyTorch), for 2-D arrays."""
    out = np.empty_like(g)
    n, m = g.shape
    if n * m < SERIAL_WORK:
        for i in range(n):
            for j in range(m):
                out[i, j] = 0.0 if y[i, j] <= 0 else g[i, j]
    else:
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
    if n * k * m < SERIAL_PRODUCT:  # small products: the same blocks, in the calling thread
        for blk in range(x_blocks):
            gemm(g[blk * block:min(n, blk * block + block)], wt, gx[blk * block:min(n, blk * block + block)])
        for blk in range(w_blocks):
            gemm(x[:, blk * w_rows:min(k, blk * w_rows + w_rows)].T, g, gw[blk * w_rows:min(k, blk * w_rows + w_rows)])
    else:
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
    blocks = (n + block - 1) // block
    if blocks <= 1:
        gemm(a, b, y)
    else:
        for blk in prange(blocks):
            r0 = blk * block
            r1 = min(n, r0 + block)
            gemm(a[r0:r1], b, y[r0:r1])
    return y
