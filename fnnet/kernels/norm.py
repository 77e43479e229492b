"""Normalisation kernels: batch norm (per channel) and layer norm (per row), forward and backward.

Batch norm sees ``x3 (N, C, L)``: the input ``(N, C)`` or ``(N, C, H, W)`` reshaped with ``L = 1`` or
``H*W``.  Per-channel statistics and coefficients are float64 ``(C,)`` arrays; elementwise work computes in
float64 and stores in the input dtype.  Reductions over a channel run serially inside one ``prange``
iteration per channel, so they do not depend on the thread count.

Layer norm and RMS norm see ``x2 (R, D)`` (the leading axes folded into rows, the normalised trailing axes
into ``D``).  Per-row reductions are serial; the gamma/beta gradients (sums over rows) use fixed chunks of
``ROW_CHUNK`` rows whose float64 partials are combined in chunk order.

Group norm sees ``x3 (N, C, L)`` and normalises each sample's group of ``C // G`` adjacent channels (a
contiguous run of ``C // G * L`` values) with its own statistics, then applies a per-channel affine map.
One ``prange`` iteration per (sample, group); the per-channel gradient partials are kept per sample and
summed over samples in order.
"""

import math

import numpy as np
from numba import prange

from ._jit import kernel

__all__ = [
    "batch_norm_stats", "batch_norm_apply", "batch_norm_bwd_sums", "batch_norm_bwd_input",
    "layer_norm_fwd", "layer_norm_bwd", "rms_norm_fwd", "rms_norm_bwd", "group_norm_fwd", "group_norm_bwd",
]

ROW_CHUNK = 32


@kernel(reduction=True)
def batch_norm_stats(x3):
    """Per-channel mean and biased variance ``(C,)`` float64 (two passes: exact for large means)."""
    N, C, L = x3.shape
    mean = np.empty(C, dtype=np.float64)
    var = np.empty(C, dtype=np.float64)
    m = N * L
    for c in prange(C):
        s = 0.0
        for n in range(N):
            for l in range(L):
                s += x3[n, c, l]
        mu = s / m
        q = 0.0
        for n in range(N):
            for l in range(L):
                d = x3[n, c, l] - mu
                q += d * d
        mean[c] = mu
        var[c] = q / m
    return mean, var


@kernel
def batch_norm_apply(x3, mean, scale, shift):
    """``y = (x - mean[c]) * scale[c] + shift[c]`` with float64 ``(C,)`` coefficients."""
    N, C, L = x3.shape
    y = np.empty_like(x3)
    for p in prange(N * C):
        n = p // C
        c = p % C
        mu = mean[c]
        k = scale[c]
        b = shift[c]
        for l in range(L):
            y[n, c, l] = (x3[n, c, l] - mu) * k + b
    return y


@kernel(reduction=True)
def batch_norm_bwd_sums(x3, g3, mean):
    """Per-channel ``sum(g)`` and ``sum(g * (x - mean[c]))``, float64 ``(C,)``."""
    N, C, L = x3.shape
    sum_g = np.empty(C, dtype=np.float64)
    sum_gx = np.empty(C, dtype=np.float64)
    for c in prange(C):
        mu = mean[c]
        s = 0.0
        t = 0.0
        for n in range(N):
            for l in range(L):
                gv = np.float64(g3[n, c, l])
                s += gv
                t += gv * (x3[n, c, l] - mu)
        sum_g[c] = s
        sum_gx[c] = t
    return sum_g, sum_gx


@kernel
def batch_norm_bwd_input(x3, g3, mean, k_g, k_x, k_0):
    """``dx = k_g[c] * g + k_x[c] * (x - mean[c]) + k_0[c]`` (train and eval backward share this form)."""
    N, C, L = x3.shape
    dx = np.empty_like(x3)
    for p in prange(N * C):
        n = p // C
        c = p % C
        mu = mean[c]
        a = k_g[c]
        b = k_x[c]
        z = k_0[c]
        for l in range(L):
            dx[n, c, l] = a * g3[n, c, l] + b * (x3[n, c, l] - mu) + z
    return dx


@kernel(reduction=True)
def layer_norm_fwd(x2, gamma, beta, eps):
    """Normalise each row of ``x2 (R, D)``: y, row means ``(R,)`` and reciprocal std ``(R,)`` (float64)."""
    R, D = x2.shape
    y = np.empty_like(x2)
    mean = np.empty(R, dtype=np.float64)
    rstd = np.empty(R, dtype=np.float64)
    for r in prange(R):
        s = 0.0
        for j in range(D):
            s += x2[r, j]
        mu = s / D
        q = 0.0
        for j in range(D):
            d = x2[r, j] - mu
            q += d * d
        inv = 1.0 / math.sqrt(q / D + eps)
        for j in range(D):
            y[r, j] = (x2[r, j] - mu) * inv * gamma[j] + beta[j]
        mean[r] = mu
        rstd[r] = inv
    return y, mean, rstd


@kernel(reduction=True)
def layer_norm_bwd(x2, g2, mean, rstd, gamma):
    """Cotangents ``dx (R, D)``, ``dgamma (D,)`` and ``dbeta (D,)``.

    ``dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat))`` with ``gh = g * gamma``; the sums over rows for
    dgamma/dbeta go through fixed row chunks combined in order."""
    R, D = x2.shape
    dx = np.empty_like(x2)
    nchunks = max((R + ROW_CHUNK - 1) // ROW_CHUNK, 1)
    part_gamma = np.zeros((nchunks, D), dtype=np.float64)
    part_beta = np.zeros((nchunks, D), dtype=np.float64)
    for ch in prange(nchunks):
        for r in range(ch * ROW_CHUNK, min(R, (ch + 1) * ROW_CHUNK)):
            mu = mean[r]
            inv = rstd[r]
            s1 = 0.0
            s2 = 0.0
            for j in range(D):
                xh = (x2[r, j] - mu) * inv
                gv = np.float64(g2[r, j])
                gh = gv * gamma[j]
                s1 += gh
                s2 += gh * xh
                part_gamma[ch, j] += gv * xh
                part_beta[ch, j] += gv
            s1 /= D
            s2 /= D
            for j in range(D):
                xh = (x2[r, j] - mu) * inv
                dx[r, j] = inv * (g2[r, j] * gamma[j] - s1 - xh * s2)
    dgamma = np.zeros(D, dtype=np.float64)
    dbeta = np.zeros(D, dtype=np.float64)
    for ch in range(nchunks):
        for j in range(D):
            dgamma[j] += part_gamma[ch, j]
            dbeta[j] += part_beta[ch, j]
    return dx, dgamma.astype(x2.dtype), dbeta.astype(x2.dtype)


@kernel(reduction=True)
def rms_norm_fwd(x2, gamma, eps):
    """``y = x * rstd * gamma`` per row of ``x2 (R, D)``, ``rstd = 1 / sqrt(mean(x**2) + eps)``: y, rstd ``(R,)``."""
    R, D = x2.shape
    y = np.empty_like(x2)
    rstd = np.empty(R, dtype=np.float64)
    for r in prange(R):
        q = 0.0
        for j in range(D):
            v = np.float64(x2[r, j])
            q += v * v
        inv = 1.0 / math.sqrt(q / D + eps)
        for j in range(D):
            y[r, j] = x2[r, j] * inv * gamma[j]
        rstd[r] = inv
    return y, rstd


@kernel(reduction=True)
def rms_norm_bwd(x2, g2, rstd, gamma):
    """Cotangents ``dx (R, D)`` and ``dgamma (D,)``: ``dx = rstd * (gh - xhat * mean(gh * xhat))`` with
    ``xhat = x * rstd`` and ``gh = g * gamma``; dgamma sums ``g * xhat`` over fixed row chunks in order."""
    R, D = x2.shape
    dx = np.empty_like(x2)
    nchunks = max((R + ROW_CHUNK - 1) // ROW_CHUNK, 1)
    part_gamma = np.zeros((nchunks, D), dtype=np.float64)
    for ch in prange(nchunks):
        for r in range(ch * ROW_CHUNK, min(R, (ch + 1) * ROW_CHUNK)):
            inv = rstd[r]
            s = 0.0
            for j in range(D):
                xh = x2[r, j] * inv
                gv = np.float64(g2[r, j])
                s += gv * gamma[j] * xh
                part_gamma[ch, j] += gv * xh
            s /= D
            for j in range(D):
                dx[r, j] = inv * (g2[r, j] * gamma[j] - x2[r, j] * inv * s)
    dgamma = np.zeros(D, dtype=np.float64)
    for ch in range(nchunks):
        for j in range(D):
            dgamma[j] += part_gamma[ch, j]
    return dx, dgamma.astype(x2.dtype)


@kernel(reduction=True)
def group_norm_fwd(x3, groups, gamma, beta, eps):
    """Normalise each (sample, group) of ``x3 (N, C, L)``, then ``* gamma[c] + beta[c]`` (float64 ``(C,)``).

    Returns y like ``x3`` and the float64 ``(N, groups)`` means and reciprocal standard deviations."""
    N, C, L = x3.shape
    cg = C // groups
    m = cg * L
    y = np.empty_like(x3)
    mean = np.empty((N, groups), dtype=np.float64)
    rstd = np.empty((N, groups), dtype=np.float64)
    for p in prange(N * groups):
        n = p // groups
        c0 = (p % groups) * cg
        s = 0.0
        for c in range(c0, c0 + cg):
            for l in range(L):
                s += x3[n, c, l]
        mu = s / m
        q = 0.0
        for c in range(c0, c0 + cg):
            for l in range(L):
                d = x3[n, c, l] - mu
                q += d * d
        inv = 1.0 / math.sqrt(q / m + eps)
        for c in range(c0, c0 + cg):
            k = inv * gamma[c]
            b = beta[c]
            for l in range(L):
                y[n, c, l] = (x3[n, c, l] - mu) * k + b
        mean[n, p % groups] = mu
        rstd[n, p % groups] = inv
    return y, mean, rstd


@kernel(reduction=True)
def group_norm_bwd(x3, g3, mean, rstd, gamma):
    """Cotangents ``dx`` like ``x3``, ``dgamma (C,)`` and ``dbeta (C,)`` (float64).

    Per (sample, group): ``dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat))`` with ``gh = g * gamma[c]``."""
    N, C, L = x3.shape
    groups = mean.shape[1]
    cg = C // groups
    m = cg * L
    dx = np.empty_like(x3)
    part_gamma = np.empty((N, C), dtype=np.float64)  # sum over l of g * xhat, per sample and channel
    part_beta = np.empty((N, C), dtype=np.float64)
    for p in prange(N * groups):
        n = p // groups
        c0 = (p % groups) * cg
        mu = mean[n, p % groups]
        inv = rstd[n, p % groups]
        s1 = 0.0
        s2 = 0.0
        for c in range(c0, c0 + cg):
            a = 0.0
            b = 0.0
            for l in range(L):
                gv = np.float64(g3[n, c, l])
                a += gv * (x3[n, c, l] - mu) * inv
                b += gv
            part_gamma[n, c] = a
            part_beta[n, c] = b
            s1 += gamma[c] * b
            s2 += gamma[c] * a
        s1 /= m
        s2 /= m
        for c in range(c0, c0 + cg):
            k = gamma[c]
            for l in range(L):
                dx[n, c, l] = inv * (g3[n, c, l] * k - s1 - (x3[n, c, l] - mu) * inv * s2)
    dgamma = np.zeros(C, dtype=np.float64)
    dbeta = np.zeros(C, dtype=np.float64)
    for n in range(N):
        for c in range(C):
            dgamma[c] += part_gamma[n, c]
            dbeta[c] += part_beta[n, c]
    return dx, dgamma, dbeta
