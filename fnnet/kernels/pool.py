"""2-D pooling kernels (NCHW): max, average and global average, forward and backward.

Shapes: ``x (N, C, H, W)``, ``y``/``g (N, C, oh, ow)``; geometry: kernel (kh, kw), stride (sh, sw), padding
(ph, pw) before each axis, dilation (dh, dw) of the max windows, output size (oh, ow) computed by the caller
(``fnnet.ops.geometry``; in ceil mode the last windows may reach past the padding: they are clipped).  1-D
pooling runs these kernels with a unit height.  Every kernel runs
``prange`` over the N*C planes; within a plane everything is serial, so the backward's accumulation into
overlapping windows happens in a fixed order (deterministic).  Sums accumulate in float64, then are cast.
"""

import numpy as np
from numba import prange

from ._jit import helper, kernel

__all__ = [
    "max_pool2d_fwd", "max_pool2d_bwd", "avg_pool2d_fwd", "avg_pool2d_bwd", "avg_pool_2x2_fwd", "avg_pool_2x2_bwd",
    "global_avg_pool2d_fwd", "global_avg_pool2d_bwd",
]


@helper
def _is_2x2(shape, kh, kw, sh, sw, ph, pw, oh, ow):
    """The common pooling geometry: 2x2 windows, stride 2, no padding, every window inside the plane."""
    return (kh == 2 and kw == 2 and sh == 2 and sw == 2 and ph == 0 and pw == 0
            and 2 * oh <= shape[2] and 2 * ow <= shape[3])


@kernel
def max_pool2d_fwd(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """Window maxima ``(N, C, oh, ow)`` and the flat in-plane index ``h*W + w`` (int32) of each.

    Padding counts as -inf.  Taps are scanned row by row; the first tap inside the input is taken, then a
    value replaces the running maximum only if it is strictly larger (so the FIRST maximum wins ties) or
    NaN (NaN propagates, as in PyTorch).  A window with no tap inside the input (possible with dilation)
    gives -inf and index -1, which the backward skips.
    """
    if dh == 1 and dw == 1 and _is_2x2(x.shape, kh, kw, sh, sw, ph, pw, oh, ow):
        return _max_pool_2x2(x, oh, ow)
    N, C, H, W = x.shape
    y = np.empty((N, C, oh, ow), dtype=x.dtype)
    idx = np.empty((N, C, oh, ow), dtype=np.int32)
    for p in prange(N * C):
        n = p // C
        c = p % C
        for a in range(oh):
            h0 = a * sh - ph
            i_lo, i_hi = _taps(h0, dh, kh, H)
            for b in range(ow):
                w0 = b * sw - pw
                j_lo, j_hi = _taps(w0, dw, kw, W)
                if i_lo == i_hi or j_lo == j_hi:
                    y[n, c, a, b] = -np.inf
                    idx[n, c, a, b] = -1
                    continue
                best = x[n, c, h0 + i_lo * dh, w0 + j_lo * dw]
                best_i = (h0 + i_lo * dh) * W + w0 + j_lo * dw
                for i in range(i_lo, i_hi):
                    h = h0 + i * dh
                    for j in range(j_lo, j_hi):
                        w = w0 + j * dw
                        v = x[n, c, h, w]
                        if v > best or v != v:
                            best = v
                            best_i = h * W + w
                y[n, c, a, b] = best
                idx[n, c, a, b] = best_i
    return y, idx


@kernel(parallel=False)
def _taps(start, step, k, size):
    """The taps ``i`` in ``[lo, hi)`` of a window starting at ``start`` whose positions ``start + i*step``
    lie inside ``[0, size)``."""
    lo = 0 if start >= 0 else min(k, (-start + step - 1) // step)
    hi = 0 if start >= size else min(k, (size - start + step - 1) // step)
    return lo, max(lo, hi)


@kernel
def _max_pool_2x2(x, oh, ow):
    """max_pool2d_fwd for the common 2x2 window, stride 2, no padding: the same scan order and the same
    tie and NaN rules, unrolled (about 10x faster than the general loop with its variable bounds)."""
    N, C, H, W = x.shape
    y = np.empty((N, C, oh, ow), dtype=x.dtype)
    idx = np.empty((N, C, oh, ow), dtype=np.int32)
    for p in prange(N * C):
        n = p // C
        c = p - n * C
        xp = x[n, c]
        for a in range(oh):
            r0 = xp[2 * a]
            r1 = xp[2 * a + 1]
            for b in range(ow):
                w0 = 2 * b
                best = r0[w0]
                best_i = 2 * a * W + w0
                v = r0[w0 + 1]
                if v > best or v != v:
                    best = v
                    best_i = 2 * a * W + w0 + 1
                v = r1[w0]
                if v > best or v != v:
                    best = v
                    best_i = (2 * a + 1) * W + w0
                v = r1[w0 + 1]
                if v > best or v != v:
                    best = v
                    best_i = (2 * a + 1) * W + w0 + 1
                y[n, c, a, b] = best
                idx[n, c, a, b] = best_i
    return y, idx


@kernel
def max_pool2d_bwd(g, idx, H, W):
    """Route each output cotangent to its argmax (none for index -1): ``(N, C, H, W)``."""
    N, C, oh, ow = g.shape
    gx = np.zeros((N, C, H * W), dtype=g.dtype)
    for p in prange(N * C):
        n = p // C
        c = p % C
        for a in range(oh):
            for b in range(ow):
                i = idx[n, c, a, b]
                if i >= 0:
                    gx[n, c, i] += g[n, c, a, b]
    return gx.reshape(N, C, H, W)


@kernel(parallel=False)
def _window_count(h0, w0, h_lo, h_hi, w_lo, w_hi, kh, kw, h_end, w_end, count_include_pad):
    """An average window's divisor: its size clipped to the padded input ending at (h_end, w_end) when
    padding counts, else its number of real pixels (PyTorch's rule)."""
    if count_include_pad:
        return (min(h0 + kh, h_end) - h0) * (min(w0 + kw, w_end) - w0)
    return (h_hi - h_lo) * (w_hi - w_lo)


@kernel
def avg_pool2d_fwd(x, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad):
    """Window means ``(N, C, oh, ow)``; the divisor is the window's size within the padded input
    (``count_include_pad``; kh*kw except for ceil-mode windows clipped at the end) or the number of real
    pixels in the window."""
    if _is_2x2(x.shape, kh, kw, sh, sw, ph, pw, oh, ow):
        return avg_pool_2x2_fwd(x, oh, ow)
    N, C, H, W = x.shape
    y = np.empty((N, C, oh, ow), dtype=x.dtype)
    for p in prange(N * C):
        n = p // C
        c = p % C
        for a in range(oh):
            h0 = a * sh - ph
            h_lo = max(h0, 0)
            h_hi = min(h0 + kh, H)
            for b in range(ow):
                w0 = b * sw - pw
                w_lo = max(w0, 0)
                w_hi = min(w0 + kw, W)
                count = _window_count(h0, w0, h_lo, h_hi, w_lo, w_hi, kh, kw, H + ph, W + pw, count_include_pad)
                s = 0.0
                for h in range(h_lo, h_hi):
                    for w in range(w_lo, w_hi):
                        s += x[n, c, h, w]
                y[n, c, a, b] = s / count
    return y


@kernel
def avg_pool_2x2_fwd(x, oh, ow):
    """avg_pool2d_fwd for 2x2 windows, stride 2, no padding (every divisor 4): the same float64 sum in the
    same order, without the general loop's per-window bounds and divisor (docs/performance.md has the times)."""
    N, C, H, W = x.shape
    y = np.empty((N, C, oh, ow), dtype=x.dtype)
    for p in prange(N * C):
        n = p // C
        c = p - n * C
        xp = x[n, c]
        yp = y[n, c]
        for a in range(oh):
            r0 = xp[2 * a]
            r1 = xp[2 * a + 1]
            for b in range(ow):
                s = 0.0
                s += r0[2 * b]
                s += r0[2 * b + 1]
                s += r1[2 * b]
                s += r1[2 * b + 1]
                yp[a, b] = s / 4.0
    return y


@kernel
def avg_pool2d_bwd(g, H, W, kh, kw, sh, sw, ph, pw, count_include_pad):
    """Spread each output cotangent evenly over its window's real pixels: ``(N, C, H, W)``."""
    if _is_2x2((g.shape[0], g.shape[1], H, W), kh, kw, sh, sw, ph, pw, g.shape[2], g.shape[3]):
        return avg_pool_2x2_bwd(g, H, W)
    N, C, oh, ow = g.shape
    gx = np.zeros((N, C, H, W), dtype=g.dtype)
    for p in prange(N * C):
        n = p // C
        c = p % C
        for a in range(oh):
            h0 = a * sh - ph
            h_lo = max(h0, 0)
            h_hi = min(h0 + kh, H)
            for b in range(ow):
                w0 = b * sw - pw
                w_lo = max(w0, 0)
                w_hi = min(w0 + kw, W)
                count = _window_count(h0, w0, h_lo, h_hi, w_lo, w_hi, kh, kw, H + ph, W + pw, count_include_pad)
                share = g[n, c, a, b] / count
                for h in range(h_lo, h_hi):
                    for w in range(w_lo, w_hi):
                        gx[n, c, h, w] += share
    return gx


@kernel
def avg_pool_2x2_bwd(g, H, W):
    """avg_pool2d_bwd for 2x2 windows, stride 2, no padding: each input pixel gets its one window's
    ``g / 4``, added to zero as in the general loop (the same bits); pixels no window covers stay 0."""
    N, C, oh, ow = g.shape
    gx = np.zeros((N, C, H, W), dtype=g.dtype)
    for p in prange(N * C):
        n = p // C
        c = p - n * C
        gp = g[n, c]
        xp = gx[n, c]
        for a in range(oh):
            r0 = xp[2 * a]
            r1 = xp[2 * a + 1]
            for b in range(ow):
                share = gp[a, b] / 4.0
                r0[2 * b] += share
                r0[2 * b + 1] += share
                r1[2 * b] += share
                r1[2 * b + 1] += share
    return gx


@kernel(reduction=True)
def global_avg_pool2d_fwd(x):
    """Plane means ``(N, C)`` of ``x (N, C, H, W)`` (float64 sums, serial per plane)."""
    N, C, H, W = x.shape
    x3 = x.reshape(N * C, H * W)
    y = np.empty(N * C, dtype=x.dtype)
    L = H * W
    for p in prange(N * C):
        s = 0.0
        for l in range(L):
            s += x3[p, l]
        y[p] = s / L
    return y.reshape(N, C)


@kernel
def global_avg_pool2d_bwd(g, H, W):
    """``g (N, C)`` spread evenly over each plane: ``(N, C, H, W)``."""
    N, C = g.shape
    L = H * W
    gx = np.empty((N * C, L), dtype=g.dtype)
    for p in prange(N * C):
        share = g[p // C, p % C] / L
        for l in range(L):
            gx[p, l] = share
    return gx.reshape(N, C, H, W)
