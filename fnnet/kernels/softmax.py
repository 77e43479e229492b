"""Softmax-family kernels (softmax, log_softmax, logsumexp) and the fused softmax cross-entropy losses.

Every kernel works on rows: ``x (rows, n)`` C-contiguous, the normalised axis last (the caller moves it
there).  Rows are independent and processed in ``prange``; within a row the loops run serially in index
order, so results do not depend on the thread count.  Numerical stability comes from subtracting the row
maximum before ``exp``; row sums accumulate in float64 (also for float32 data).  Backward kernels read the
saved outputs, never recompute the forward.

The exponentials are ``_vmath.exp`` (vectorised, <= 1 ulp).  The kernels that sum rows are compiled with
``fastmath={'reassoc', 'contract'}`` so the sums vectorise, and ``_vmath``'s helpers must never be compiled
under those flags (reassociation could undo their rounding tricks); so every exponential is taken in one of
the small non-fastmath row functions below (``_exp_shifted_row`` ...), which write into an output row that
the fastmath kernel then sums.  Kernels that reach ``_vmath`` carry its source hash in their cache key.
"""

import math

import numpy as np
from numba import prange

from . import _vmath as vm
from ._jit import SERIAL_WORK, helper, kernel

__all__ = [
    "softmax_fwd", "softmax_bwd", "log_softmax_fwd", "log_softmax_bwd", "logsumexp_fwd", "logsumexp_bwd",
    "softmax_cross_entropy_fwd", "softmax_cross_entropy_bwd",
    "softmax_cross_entropy_probs_fwd", "softmax_cross_entropy_probs_bwd",
]


def _vmath_kernel(fn=None, **options):
    """``kernel(**options)`` for kernels that reach ``_vmath``: its source hash is part of their cache key."""
    if fn is None:
        return lambda f: _vmath_kernel(f, **options)
    return kernel(**options)(vm.cache_key_suffix(fn))


@_vmath_kernel(parallel=False)
def _exp_shifted_row(x, i, shift, out):
    """``out[i, j] = exp(x[i, j] - shift)`` for the whole row ``i`` (no fastmath: see the module docstring)."""
    for j in range(x.shape[1]):
        out[i, j] = vm.exp(x[i, j] - shift)


@kernel(parallel=False)
def _scale_row(y, i, inv):
    """``y[i, j] *= inv`` for the whole row ``i``, without fastmath: compiled with it, this float32 times
    float64 loop took 5x as long (``python tests/tools/time_softmax.py``)."""
    row = y[i]
    for j in range(row.shape[0]):
        row[j] = row[j] * inv


@helper
def row_max(row, n):
    """The maximum of ``row[:n]`` in the row's dtype (``-inf`` when ``n`` is 0): the shift that keeps exp
    from overflowing, here and in the attention kernels.

    Eight running maxima, each a select, which LLVM packs into one vector select (a single running maximum
    does not vectorise: 0.87 against 0.18 ms for 1000 rows of 1000 on one thread, ``python
    tests/tools/time_softmax.py``).  The result is a single running maximum's: every lane starts at
    ``row[0]`` and takes a value only when it is larger, so it is NaN only when ``row[0]`` is; a NaN further
    on makes its own ``exp(x - m)`` NaN, and with it the row's sum, which is how the kernels propagate it.
    Only the sign of a zero maximum can differ, which nothing downstream can tell apart (``x - m`` is then
    a zero, whose exponential is 1)."""
    if n == 0:
        return row.dtype.type(-np.inf)
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = row[0]
    j = 0
    while j + 8 <= n:
        v = row[j]
        m0 = v if v > m0 else m0
        v = row[j + 1]
        m1 = v if v > m1 else m1
        v = row[j + 2]
        m2 = v if v > m2 else m2
        v = row[j + 3]
        m3 = v if v > m3 else m3
        v = row[j + 4]
        m4 = v if v > m4 else m4
        v = row[j + 5]
        m5 = v if v > m5 else m5
        v = row[j + 6]
        m6 = v if v > m6 else m6
        v = row[j + 7]
        m7 = v if v > m7 else m7
        j += 8
    for t in range(n - j):
        v = row[j + t]
        m0 = v if v > m0 else m0
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    m4 = m5 if m5 > m4 else m4
    m6 = m7 if m7 > m6 else m6
    m0 = m2 if m2 > m0 else m0
    m4 = m6 if m6 > m4 else m4
    return m4 if m4 > m0 else m0


@helper
def _has_nan(row):
    """Whether ``row`` holds a NaN (for the rare rows whose maximum is infinite)."""
    for j in range(row.shape[0]):
        if row[j] != row[j]:
            return True
    return False


@_vmath_kernel(reduction=True)
def softmax_fwd(x):
    """``y[i] = exp(x[i] - max x[i]) / sum(...)``; ``x``/``y (rows, n)``."""
    rows, n = x.shape
    y = np.empty_like(x)
    for i in prange(rows):
        if n == 0:
            continue
        _exp_shifted_row(x, i, row_max(x[i], n), y)
        s = 0.0
        for j in range(n):
            s += y[i, j]
        _scale_row(y, i, 1.0 / s)
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


@_vmath_kernel(reduction=True)
def log_softmax_fwd(x):
    """``y[i] = x[i] - logsumexp(x[i])``, computed as ``(x - max) - log(sum exp(x - max))``."""
    rows, n = x.shape
    y = np.empty_like(x)
    for i in prange(rows):
        if n == 0:
            continue
        m = row_max(x[i], n)
        _exp_shifted_row(x, i, m, y)  # y's row holds the exponentials until it is overwritten below
        s = 0.0
        for j in range(n):
            s += y[i, j]
        log_s = math.log(s)
        for j in range(n):
            y[i, j] = (x[i, j] - m) - log_s
    return y


@_vmath_kernel(parallel=False)
def _log_softmax_bwd_row(y, g, i, s, out):
    """``out[i, j] = g[i, j] - exp(y[i, j]) * s`` for the whole row ``i`` (no fastmath)."""
    for j in range(y.shape[1]):
        out[i, j] = g[i, j] - vm.exp(y[i, j]) * s


@_vmath_kernel(reduction=True)
def log_softmax_bwd(y, g):
    """VJP from the saved output: ``g - exp(y) * sum(g)`` per row."""
    rows, n = y.shape
    out = np.empty_like(g)
    for i in prange(rows):
        s = 0.0
        for j in range(n):
            s += g[i, j]
        _log_softmax_bwd_row(y, g, i, s, out)
    return out


@_vmath_kernel(reduction=True)
def logsumexp_fwd(x):
    """``out[i] = log(sum_j exp(x[i, j]))``; ``-inf`` for an empty row, ``+-inf`` when the row max is.
    Uses a scratch array of ``x``'s size for the exponentials."""
    rows, n = x.shape
    out = np.empty(rows, dtype=x.dtype)
    e = np.empty_like(x)
    for i in prange(rows):
        if n == 0:
            out[i] = -np.inf
            continue
        m = row_max(x[i], n)
        if np.isinf(m):  # all -inf, or a +inf: the sum cannot be formed, but a NaN must not be dropped
            out[i] = np.nan if _has_nan(x[i]) else m
            continue
        _exp_shifted_row(x, i, m, e)
        s = 0.0
        for j in range(n):
            s += e[i, j]
        out[i] = m + math.log(s)
    return out


@_vmath_kernel
def logsumexp_bwd(x, lse, g):
    """VJP: ``g[i] * exp(x[i, j] - lse[i])`` (the softmax, from the saved output ``lse (rows,)``)."""
    rows, n = x.shape
    out = np.empty_like(x)
    for i in prange(rows):
        for j in range(n):
            out[i, j] = g[i] * vm.exp(x[i, j] - lse[i])
    return out


@_vmath_kernel(reduction=True)
def softmax_cross_entropy_fwd(x, labels):
    """Fused softmax cross-entropy with integer labels.

    Args: ``x (rows, n)`` logits, ``labels (rows,)`` int64 in ``[0, n)`` (validated by the caller).
    Returns: ``(losses (rows,), total, probs (rows, n))``: per-row ``logsumexp(x[i]) - x[i, labels[i]]``
    (in x's dtype), their float64 sum taken serially in row order, and the softmax the backward needs.
    """
    rows, n = x.shape
    probs = np.empty_like(x)
    losses64 = np.empty(rows, dtype=np.float64)
    if rows * n < SERIAL_WORK:  # a small batch: no parallel launch
        for i in range(rows):
            _cross_entropy_row(x, labels, i, probs, losses64)
    else:
        for i in prange(rows):
            _cross_entropy_row(x, labels, i, probs, losses64)
    losses = np.empty(rows, dtype=x.dtype)
    total = 0.0
    for i in range(rows):
        losses[i] = losses64[i]
        total += losses64[i]
    return losses, total, probs


@_vmath_kernel(parallel=False, reduction=True)
def _cross_entropy_row(x, labels, i, probs, losses64):
    """Row ``i`` of :func:`softmax_cross_entropy_fwd`: its softmax into ``probs`` and its loss (float64)."""
    n = x.shape[1]
    m = row_max(x[i], n)
    _exp_shifted_row(x, i, m, probs)
    s = 0.0
    for j in range(n):
        s += probs[i, j]
    _scale_row(probs, i, 1.0 / s)
    losses64[i] = (m - x[i, labels[i]]) + math.log(s)


@kernel
def softmax_cross_entropy_bwd(probs, labels, g, g_stride, scale):
    """``(probs[i] - onehot(labels[i])) * g[i * g_stride] * scale``; ``g_stride`` is 0 for a scalar ``g``."""
    rows, n = probs.shape
    out = np.empty_like(probs)
    if rows * n < SERIAL_WORK:  # a small batch: no parallel launch
        for i in range(rows):
            _cross_entropy_bwd_row(probs, labels, g, g_stride, scale, i, out)
    else:
        for i in prange(rows):
            _cross_entropy_bwd_row(probs, labels, g, g_stride, scale, i, out)
    return out


@kernel(parallel=False)
def _cross_entropy_bwd_row(probs, labels, g, g_stride, scale, i, out):
    gi = g[i * g_stride] * scale
    for j in range(probs.shape[1]):
        out[i, j] = probs[i, j] * gi
    out[i, labels[i]] = (probs[i, labels[i]] - 1.0) * gi


@_vmath_kernel(reduction=True)
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
        m = row_max(x[i], n)
        _exp_shifted_row(x, i, m, logp)  # logp's row holds the exponentials until it is overwritten below
        s = 0.0
        for j in range(n):
            s += logp[i, j]
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


@_vmath_kernel(parallel=False)
def _probs_bwd_row(logp, t, i, tsum, gi, dx):
    """``dx[i, j] = (exp(logp[i, j]) * tsum - t[i, j]) * gi`` for the whole row ``i`` (no fastmath)."""
    for j in range(logp.shape[1]):
        dx[i, j] = (vm.exp(logp[i, j]) * tsum - t[i, j]) * gi


@_vmath_kernel(reduction=True)
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
        _probs_bwd_row(logp, t, i, tsum, gi, dx)
        for j in range(n):
            dt[i, j] = -logp[i, j] * gi
    return dx, dt
