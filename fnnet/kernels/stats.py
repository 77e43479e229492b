"""One-pass summary statistics of an array (for activation tracking), a fixed-range histogram, and the
finiteness test of training steps.

Each reads a flat array once, in fixed chunks combined in index order, so results do not depend on the
thread count and nothing of the size of the input is allocated.
"""

import numpy as np
from numba import prange

from ._jit import SERIAL_STREAM, kernel

__all__ = ["summary_stats", "histogram", "all_finite"]

CHUNK = 16384


@kernel(reduction=True)
def summary_stats(x):
    """Returns float64[8]: count of finite values, sum, sum of squares, min, max (over finite values),
    number of exact zeros, number of NaNs, number of infinities."""
    n = x.size
    nchunks = max((n + CHUNK - 1) // CHUNK, 1)
    part = np.zeros((nchunks, 8), dtype=np.float64)
    for c in prange(nchunks):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        cnt = 0.0
        s = 0.0
        ss = 0.0
        mn = np.inf
        mx = -np.inf
        zeros = 0.0
        nans = 0.0
        infs = 0.0
        for i in range(lo, hi):
            v = np.float64(x[i])
            if np.isnan(v):
                nans += 1.0
            elif np.isinf(v):
                infs += 1.0
            else:
                cnt += 1.0
                s += v
                ss += v * v
                mn = min(mn, v)
                mx = max(mx, v)
                if v == 0.0:
                    zeros += 1.0
        part[c, 0] = cnt
        part[c, 1] = s
        part[c, 2] = ss
        part[c, 3] = mn
        part[c, 4] = mx
        part[c, 5] = zeros
        part[c, 6] = nans
        part[c, 7] = infs
    out = np.zeros(8, dtype=np.float64)
    out[3] = np.inf
    out[4] = -np.inf
    for c in range(nchunks):
        out[0] += part[c, 0]
        out[1] += part[c, 1]
        out[2] += part[c, 2]
        out[3] = min(out[3], part[c, 3])
        out[4] = max(out[4], part[c, 4])
        out[5] += part[c, 5]
        out[6] += part[c, 6]
        out[7] += part[c, 7]
    return out


@kernel
def histogram(x, lo, hi, bins):
    """Counts of finite values of flat ``x`` in ``bins`` equal bins over [lo, hi] (hi inclusive)."""
    n = x.size
    nchunks = max((n + CHUNK - 1) // CHUNK, 1)
    part = np.zeros((nchunks, bins), dtype=np.int64)
    width = (hi - lo) / bins if hi > lo else 1.0
    for c in prange(nchunks):
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            v = np.float64(x[i])
            if np.isfinite(v) and v >= lo and v <= hi:
                b = int((v - lo) / width)
                if b >= bins:
                    b = bins - 1
                part[c, b] += 1
    out = np.zeros(bins, dtype=np.int64)
    for c in range(nchunks):
        for b in range(bins):
            out[b] += part[c, b]
    return out


@kernel(reduction=True)
def all_finite(x):
    """True when no element of flat ``x`` is NaN or infinite: ``x * 0`` is 0 for a finite value and NaN
    otherwise, and one NaN makes a sum NaN in any order (so the vectorised, chunked sum cannot miss one).
    Below ``SERIAL_STREAM`` elements the chunks are summed in the calling thread (a gradient check of a
    small model is one such call per param)."""
    n = x.size
    nchunks = max((n + CHUNK - 1) // CHUNK, 1)
    partial = np.zeros(nchunks, dtype=x.dtype)
    if n < SERIAL_STREAM:
        for c in range(nchunks):
            partial[c] = _times_zero_sum(x[c * CHUNK:min(n, (c + 1) * CHUNK)])
    else:
        for c in prange(nchunks):
            partial[c] = _times_zero_sum(x[c * CHUNK:min(n, (c + 1) * CHUNK)])
    total = partial[0]
    for c in range(1, nchunks):
        total += partial[c]
    return total == 0


@kernel(parallel=False, reduction=True)
def _times_zero_sum(chunk):
    """The sum of ``chunk * 0`` in ``chunk``'s dtype: 0 when every element is finite, NaN otherwise."""
    zero = np.zeros(1, dtype=chunk.dtype)[0]
    s = zero
    for i in range(chunk.size):
        s += chunk[i] * zero
    return s

