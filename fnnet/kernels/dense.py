"""Dense kernels: matrix products through BLAS (``np.dot`` inside the kernel), bias and ReLU fused.

Shapes: ``x (n, in)``, ``w (in, out)`` (fnnet's Linear layout), ``b (out,)``, ``y``/``g (n, out)``.
Reductions over the batch (the bias gradient) use fixed row chunks combined in index order, so the
result does not depend on the number of threads.
"""

import numpy as np
from numba import prange

from ._jit import kernel

ROW_CHUNK = 256


@kernel
def linear_fwd(x, w, b, has_bias, relu):
    """y = x @ w (+ b) (then max(., 0) when ``relu``)."""
    y = np.dot(x, w)
    n, m = y.shape
    if has_bias or relu:
        for i in prange(n):
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
    """g where y > 0 else 0 (the fused ReLU's backward), for 2-D arrays."""
    out = np.empty_like(g)
    n, m = g.shape
    for i in prange(n):
        for j in range(m):
            out[i, j] = g[i, j] if y[i, j] > 0 else 0.0
    return out


@kernel(parallel=False)
def linear_bwd(x, w, g, need_x, need_w, need_b):
    """Cotangents of linear_fwd without activation: (g @ w.T, x.T @ g, column sums of g).

    Unneeded results come back as empty arrays."""
    gx = np.dot(g, w.T) if need_x else np.empty((0, 0), dtype=g.dtype)
    gw = np.dot(x.T, g) if need_w else np.empty((0, 0), dtype=g.dtype)
    gb = column_sums(g) if need_b else np.empty(0, dtype=g.dtype)
    return gx, gw, gb


@kernel(parallel=False)
def matmul_fwd(a, b):
    """(n, k) @ (k, m)."""
    return np.dot(a, b)


@kernel(parallel=False)
def batched_matmul_fwd(a, b):
    """(B, n, k) @ (B, k, m), one BLAS call per batch entry."""
    out = np.empty((a.shape[0], a.shape[1], b.shape[2]), dtype=a.dtype)
    for i in range(a.shape[0]):
        out[i] = np.dot(a[i], b[i])
    return out


@kernel(parallel=False)
def batched_matmul_bwd(a, b, g):
    """Cotangents of batched_matmul_fwd: (g @ b^T, a^T @ g) per batch entry."""
    ga = np.empty_like(a)
    gb = np.empty_like(b)
    for i in range(a.shape[0]):
        ga[i] = np.dot(g[i], b[i].T)
        gb[i] = np.dot(a[i].T, g[i])
    return ga, gb
