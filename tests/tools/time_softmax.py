"""Time the softmax-family kernels: ``python tests/tools/time_softmax.py``.

On 1000 rows of 1000 float32 values: the row maximum of ``kernels.softmax`` against a single running
maximum (the loop it replaced), both over every row in one thread; then the forward and backward kernels
of softmax, log-softmax and the softmax cross-entropy with the caller's thread count.  Interleaved, 100 rounds;
prints the median of each.  A developer tool; not part of the test suite.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fnnet.kernels import softmax as KS
from _interleave import interleaved_seconds  # tests/tools: the script's own folder


@njit(cache=False)
def _single_maximum(x):
    out = np.empty(x.shape[0], x.dtype)
    for i in range(x.shape[0]):
        m = x[i, 0]
        for j in range(1, x.shape[1]):
            if x[i, j] > m:
                m = x[i, j]
        out[i] = m
    return out


@njit(cache=False)
def _row_maxima(x):
    out = np.empty(x.shape[0], x.dtype)
    for i in range(x.shape[0]):
        out[i] = KS.row_max(x[i], x.shape[1])
    return out


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 1000)).astype(np.float32)
    labels = rng.integers(0, 1000, 1000)
    assert np.array_equal(_row_maxima(x), _single_maximum(x))
    y = KS.softmax_fwd(x)
    g = rng.standard_normal(x.shape).astype(np.float32)
    calls = {
        "row maximum (one thread)": lambda: _row_maxima(x),
        "single running maximum (one thread)": lambda: _single_maximum(x),
        "softmax_fwd": lambda: KS.softmax_fwd(x),
        "log_softmax_fwd": lambda: KS.log_softmax_fwd(x),
        "softmax_cross_entropy_fwd": lambda: KS.softmax_cross_entropy_fwd(x, labels),
        "softmax_bwd": lambda: KS.softmax_bwd(y, g),
        "log_softmax_bwd": lambda: KS.log_softmax_bwd(y, g),
        "softmax_cross_entropy_bwd": lambda: KS.softmax_cross_entropy_bwd(y, labels, g[:, 0].copy(), 1, np.float32(1e-3)),
    }
    for name, values in interleaved_seconds(calls, 100).items():
        print(f"{name:38s} {np.median(values) * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
