"""Softmax-family kernels (softmax, log_softmax, logsumexp) and the fused softmax cross-entropy losses.

Every kernel works on rows: ``x (rows, n)`` C-contiguous, the normalised axis last (the caller moves it
there).  Rows are independent and processed in ``prange``; within a row the loops run serially in index
order, so results do not depend on the thread count.  Numerical stability comes from subtracting the row
maximum before ``exp``; row sums accumulate in float64 (also for float32 data).  Backward kernels read the
saved outputs, never recompute the forward.
"""

import math

import numpy as np
from numba import prange

from ._jit import kernel

__all__ = [
    "softmax_fwd", "softmax_bwd", "log_softmax_fwd", "log_softmax_bwd", "logsumexp_fwd", "logsumexp_bwd",
    "softmax_cross_entropy_fwd", "softmax_cross_entropy_bwd",
    "softmax_cross_entropy_probs_fwd", "softmax_cross_entropy_probs_bwd",
]


@kernel(parallel=False)
def _row_max(x, i):
    """max of row ``i`` of ``x (rows, n)``, n > 0 (the shift that keeps exp from overflowing)."""
    m = x[i, 0]
    for j in range(1, x.shape[1]):
        if x[i, j] > m:
            m = x[i, j]
    return m


@kernel(reduction=True)
def softmax_fwd(x):
    """``y[i] = exp(x[i] - max x[i]) / sum(...)``; ``x``/``y (rows, n)``."""
    rows, n = x.shape
    y = np.empty_like(x)
    for i in prange(rows):
        if n == 0:
            continue
        m = _row_max(x, i)
        s = 0.0
        for j in range(n):
            e = np.exp(x[i, j] - m)
            y[i, j] = e
            s += e
        inv = 1.0 / s
        for j in range(n):
            y[i, j] = y[i, j] * inv
    return y


@kernel(reduction=True)
def softmax_bwd(y, g):
    """VJP from the saved output: ``y * (g - sum(g * y))`` per row."""
    rows, n = y.shape
    out = np.empty_like(g)
    for i in prange(rows):
        dot = 0.0
        for j in range(n):
            dot += g[i, j] * y[i, j]
        for j in range(n):
            out[i, j] = y[i, j] * (g[i, j] - dot)
    return out


@kernel(reduction=True)
def log_softmax_fwd(x):
    """``y[i] = x[i] - logsumexp(x[i])``, computed as ``(x - max) - log(sum exp(x - max))``."""
    rows, n = x.shape
    y = np.empty_like(x)
    for i in prange(rows):
        if n == 0:
            continue
        m = _row_max(x, i)
        s = 0.0
        for j in range(n):
            s += np.exp(x[i, j] - m)
        log_s = math.log(s)
        for j in range(n):
            y[i, j] = (x[i, j] - m) - log_s
    return y


@kernel(reduction=True)
def log_softmax_bwd(y, g):
    """VJP from the saved output: ``g - exp(y) * sum(g)`` per row."""
    rows, n = y.shape
    out = np.empty_like(g)
    for i in prange(rows):
        s = 0.0
        for j in range(n):
            s += g[i, j]
        for j in range(n):
            out[i, j] = g[i, j] - np.exp(y[i, j]) * s
    return out


@kernel(reduction=True)
def logsumexp_fwd(x):
    """``out[i] = log(sum_j exp(x[i, j]))``; ``-inf`` for an empty row, ``+-inf`` when the row max is."""
    rows, n = x.shape
    out = np.empty(rows, dtype=x.dtype)
    for i in prange(rows):
        if n == 0:
            out[i] = -np.inf
            continue
        m = _row_max(x, i)
        if np.isinf(m):
            out[i] = m
            continue
        s = 0.0
        for j in range(n):
            s += np.exp(x[i, j] - m)
        out[i] = m + math.log(s)
    return out


@kernel
def logsumexp_bwd(x, lse, g):
    """VJP: ``g[i] * exp(x[i, j] - lse[i])`` (the softmax, from the saved output ``lse (rows,)``)."""
    rows, n = x.shape
    out = np.empty_like(x)
    for i in prange(rows):
        for j in range(n):
            out[i, j] = g[i] * np.exp(x[i, j] - lse[i])
    return out


@kernel(reduction=True)
def softmax_cross_entropy_fwd(x, labels):
    """Fused softmax cross-entropy with integer labels.

    Args: ``x (rows, n)`` logits, ``labels (rows,)`` int64 in ``[0, n)`` (validated by the caller).
    Returns: ``(losses (rows,), total, probs (rows, n))``: per-row ``logsumexp(x[i]) - x[i, labels[i]]``
    (in x's dtype), their float64 sum taken serially in row order, and the softmax the backward needs.
    """
    rows, n = x.shape
    probs = np.empty_like(x)
    losses64 = np.empty(rows, dtype=np.float64)
    for i in prange(rows):
        m = _row_max(x, i)
        s = 0.0
        for j in range(n):
            e = np.exp(x[i, j] - m)
            probs[i, j] = e
            s += e
        inv = 1.0 / s
        for j in range(n):
            probs[i, j] = probs[i, j] * inv
        losses64[i] = (m - x[i, labels[i]]) + math.log(s)
    losses = np.empty(rows, dtype=x.dtype)
    total = 0.0
    for i in range(rows):
        losses[i] = losses64[i]
        total += losses64[i]
    return losses, total, probs


@kernel
def softmax_cross_entropy_bwd(probs, labels, g, g_stride, scale):
    """``(probs[i] - onehot(labels[i])) * g[i * g_stride] * scale``; ``g_stride`` is 0 for a scalar ``g``."""
    rows, n = probs.shape
    out = np.empty_like(probs)
    for i in prange(rows):
        gi = g[i * g_stride] * scale
        for j in range(n):
            out[i, j] = probs[i, j] * gi
        out[i, labels[i]] = (probs[i, labels[i]] - 1.0) * gi
    return out


@kernel(reduction=True)
def softmax_cross_entropy_probs_fwd(x, t):
    """Fused softmax cross-entropy with probability (or one-hot) targets ``t (rows, n)``.

    Returns ``(losses (rows,), total, logp (rows, n))``: per-row ``-sum_j t[i, j] * log_softmax(x)[i, j]``,
    their float64 sum in row order, and the log-softmax the backward needs.
    """
    rows, n = x.shape
    logp = np.empty_like(x)
    losses64 = np.zeros(rows, dtype=np.float64)
    for i in prange(rows):
        if n == 0:
            continue
        m = _row_max(x, i)
        s = 0.0
        for j in range(n):
            s += np.exp(x[i, j] - m)
        log_s = math.log(s)
        acc = 0.0
        for j in range(n):
            lp = (x[i, j] - m) - log_s
            logp[i, j] = lp
            acc -= t[i, j] * lp
        losses64[i] = acc
    losses = np.empty(rows, dtype=x.dtype)
    total = 0.0
    for i in range(rows):
        losses[i] = losses64[i]
        total += losses64[i]
    return losses, total, logp


@kernel(reduction=True)
def softmax_cross_entropy_probs_bwd(logp, t, g, g_stride, scale):
    """Cotangents ``(d logits, d targets)``: ``(softmax * sum(t) - t) * gi`` and ``-logp * gi``."""
    rows, n = logp.shape
    dx = np.empty_like(logp)
    dt = np.empty_like(logp)
    for i in prange(rows):
        gi = g[i * g_stride] * scale
        tsum = 0.0
        for j in range(n):
            tsum += t[i, j]
        for j in range(n):
            dx[i, j] = (np.exp(logp[i, j]) * tsum - t[i, j]) * gi
            dt[i, j] = -logp[i, j] * gi
    return dx, dt
