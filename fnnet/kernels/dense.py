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
#: Rows per BLAS call in a product of ``LARGE_ROWS`` rows or more (a function of the shape only, never of
#: the thread count, so results never depend on it).  Each call packs the whole right-hand matrix again,
#: so large inputs take large blocks (2048 x 128 -> 384: forward 2.0 -> 1.7 ms, 512 outputs 2.6 -> 2.1 ms
#: with 256-row blocks).
LARGE_ROW_BLOCK = 256
LARGE_ROWS = 1024
#: Below ``LARGE_ROWS`` rows a product splits its output's columns into this many blocks instead: each
#: thread then reads its own half of the weight instead of all of it, which matters most in a training
#: step, where the optimizer has just written the weight from both threads (the ``mlp`` step's first
#: layer, 128 x 784 by 256, inside its plan: 0.38 -> 0.26 ms, ``python tests/tools/profile_plan.py mlp
#: fnnet``), and a batch of 64 rows or fewer gets both threads (``python tests/tools/time_linear.py``).
#: Outputs narrower than ``2 * MIN_COLUMNS`` keep row blocks.
COLUMN_BLOCKS = 2
MIN_COLUMNS = 32
#: Rows per block where rows are split below ``LARGE_ROWS`` (outputs narrower than ``2 * MIN_COLUMNS``).
ROW_BLOCK = 64
#: The weight gradient x.T @ g is split into this many row blocks (a constant, like ROW_BLOCK): a few large
#: GEMMs were measured faster than many 64-row ones (0.37 vs 0.50 ms for 128x784 by 256).
WEIGHT_BLOCKS = 2
#: Products below this many multiply-adds (n * in * out) run in the calling thread: a (32, 64) x (64, 64)
#: product takes ~6 us, about what a parallel launch costs.
SERIAL_PRODUCT = 1 << 20


@helper
def _blocks(n, k, m):
    """How ``y (n, m) = a (n, k) @ b (k, m)`` is split: ``(columns, count, size)``, blocks of ``size``
    columns (``columns``) or rows, ``count`` of them; one block below ``SERIAL_PRODUCT`` multiply-adds.
    A function of the shape only, so the bits never depend on the thread count."""
    if n * k * m < SERIAL_PRODUCT:
        return False, 1, max(n, 1)
    if n >= LARGE_ROWS:
        return False, (n + LARGE_ROW_BLOCK - 1) // LARGE_ROW_BLOCK, LARGE_ROW_BLOCK
    if m >= COLUMN_BLOCKS * MIN_COLUMNS:
        size = (m + COLUMN_BLOCKS - 1) // COLUMN_BLOCKS
        return True, (m + size - 1) // size, size
    return False, (n + ROW_BLOCK - 1) // ROW_BLOCK, ROW_BLOCK


@helper
def _span(columns, size, blk, n, m):
    """``(r0, r1, c0, c1)``: the rows and columns of block ``blk`` of an ``(n, m)`` output (``_blocks``)."""
    lo = blk * size
    if columns:
        return 0, n, lo, min(m, lo + size)
    return lo, min(n, lo + size), 0, m


@helper
def _product_block(a, b, y, columns, size, blk):
    """Block ``blk`` of ``y = a @ b`` split as ``_blocks`` says: one single-threaded BLAS call."""
    r0, r1, c0, c1 = _span(columns, size, blk, y.shape[0], y.shape[1])
    gemm(a[r0:r1], b[:, c0:c1], y[r0:r1, c0:c1])


@kernel
def linear_fwd(x, w, b, has_bias, relu):
    """y = x @ w (+ b) (then max(., 0) when ``relu``).

    The output is split into fixed blocks (``_blocks``), one single-threaded BLAS call per block inside
    ``prange``, with the bias and ReLU applied to the block while it is in cache.  A single block runs in
    the calling thread (no parallel launch)."""
    n, k = x.shape
    m = w.shape[1]
    y = np.empty((n, m), dtype=x.dtype)
    columns, count, size = _blocks(n, k, m)
    if count <= 1:
        _linear_block(x, w, b, y, columns, size, 0, has_bias, relu)
    else:
        for blk in prange(count):
            _linear_block(x, w, b, y, columns, size, blk, has_bias, relu)
    return y


@helper
def _linear_block(x, w, b, y, columns, size, blk, has_bias, relu):
    """Block ``blk`` of :func:`linear_fwd`."""
    _product_block(x, w, y, columns, size, blk)
    if has_bias or relu:
        r0, r1, c0, c1 = _span(columns, size, blk, y.shape[0], y.shape[1])
        bias = b[c0:c1] if has_bias else b
        for i in range(r0, r1):
            row = y[i, c0:c1]  # contiguous, indexed from 0: the loop vectorises (design.md)
            for j in range(row.shape[0]):
                v = row[j]
                if has_bias:
                    v += bias[j]
                if relu and v < 0:
                    v = 0.0
                row[j] = v


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

    Both products are split into independent output blocks (``gx`` as ``_blocks`` says, rows of ``gw``),
    so no block sums partial results and the answer does not depend on the thread count.  Unneeded results
    come back as empty arrays."""
    n, k = x.shape
    m = g.shape[1]
    gx = np.empty((n if need_x else 0, k), dtype=g.dtype)
    gw = np.empty((k if need_w else 0, m), dtype=g.dtype)
    columns, x_blocks, size = _blocks(n, m, k)
    x_blocks = x_blocks if need_x else 0
    w_blocks = min(WEIGHT_BLOCKS, k) if need_w else 0
    w_rows = (k + WEIGHT_BLOCKS - 1) // WEIGHT_BLOCKS
    wt = w.T
    if n * k * m < SERIAL_PRODUCT:  # small products: the same blocks, in the calling thread
        for blk in range(x_blocks):
            _product_block(g, wt, gx, columns, size, blk)
        for blk in range(w_blocks):
            _weight_block(x, g, gw, w_rows, blk)
    else:
        for blk in prange(x_blocks):  # two loops, each of equal-cost blocks, so both threads stay busy
            _product_block(g, wt, gx, columns, size, blk)
        for blk in prange(w_blocks):
            _weight_block(x, g, gw, w_rows, blk)
    gb = column_sums(g) if need_b else np.empty(0, dtype=g.dtype)
    return gx, gw, gb


@kernel
def transposed_product(x, g):
    """``x.T @ g`` for ``x (n, k)`` and ``g (n, m)``: ``linear_bwd``'s weight gradient on its own (the
    recurrent kernels' weight gradient over every step), in the same ``WEIGHT_BLOCKS`` row blocks, in the
    calling thread below ``SERIAL_PRODUCT`` multiply-adds."""
    n, k = x.shape
    m = g.shape[1]
    gw = np.empty((k, m), dtype=g.dtype)
    blocks = min(WEIGHT_BLOCKS, k)
    w_rows = (k + WEIGHT_BLOCKS - 1) // WEIGHT_BLOCKS
    if n * k * m < SERIAL_PRODUCT:
        for blk in range(blocks):
            _weight_block(x, g, gw, w_rows, blk)
    else:
        for blk in prange(blocks):
            _weight_block(x, g, gw, w_rows, blk)
    return gw


@helper
def _weight_block(x, g, gw, w_rows, blk):
    """Rows ``blk * w_rows`` on of ``gw = x.T @ g`` (``WEIGHT_BLOCKS`` blocks)."""
    r0 = blk * w_rows
    r1 = min(x.shape[1], r0 + w_rows)
    gemm(x[:, r0:r1].T, g, gw[r0:r1])


@kernel
def matmul_fwd(a, b):
    """(n, k) @ (k, m), in fixed blocks (``_blocks``; one single-threaded BLAS call each)."""
    n, k = a.shape
    y = np.empty((n, b.shape[1]), dtype=a.dtype)
    columns, count, size = _blocks(n, k, b.shape[1])
    if count <= 1:
        _product_block(a, b, y, columns, size, 0)
    else:
        for blk in prange(count):
            _product_block(a, b, y, columns, size, blk)
    return y
