"""Unary elementwise kernels: math functions and activations, forward and backward.

Every kernel takes flat (1-D), C-contiguous float32/float64 arrays of equal length, validated by the
caller, and returns a new array of the same dtype.  Backward kernels take the residual the forward
saved (input ``x`` or output ``y``, whichever the derivative is cheaper from) and the cotangent ``g``.
"""

import math

import numpy as np
from numba import prange

from ._jit import kernel


@kernel
def neg_fwd(x):
    out = np.empty_like(x)
    for i in prange(x.size):
        out[i] = -x[i]
    return out


@kernel
def exp_fwd(x):
    out = np.empty_like(x)
    for i in prange(x.size):
        out[i] = np.exp(x[i])
    return out


@kernel
def exp_bwd(y, g):
    out = np.empty_like(g)
    for i in prange(g.size):
        out[i] = g[i] * y[i]
    return out


@kernel
def log_fwd(x):
    out = np.empty_like(x)
    for i in prange(x.size):
        out[i] = np.log(x[i])
    return out


@kernel
def log_bwd(x, g):
    out = np.empty_like(g)
    for i in prange(g.size):
        out[i] = g[i] / x[i]
    return out


@kernel
def sqrt_fwd(x):
    out = np.empty_like(x)
    for i in prange(x.size):
        out[i] = np.sqrt(x[i])
    return out


@kernel
def sqrt_bwd(y, g):
    out = np.empty_like(g)
    for i in prange(g.size):
        out[i] = 0.5 * g[i] / y[i]
    return out


@kernel
def abs_fwd(x):
    out = np.empty_like(x)
    for i in prange(x.size):
        out[i] = abs(x[i])
    return out


@kernel
def abs_bwd(x, g):
    """d|x|/dx = sign(x), with 0 at x == 0 (the subgradient PyTorch and NumPy's sign use)."""
    out = np.empty_like(g)
    for i in prange(g.size):
        v = x[i]
        out[i] = g[i] if v > 0 else (-g[i] if v < 0 else 0.0)
    return out


@kernel
def clip_fwd(x, lo, hi):
    out = np.empty_like(x)
    for i in prange(x.size):
        v = x[i]
        out[i] = lo if v < lo else (hi if v > hi else v)
    return out


@kernel
def clip_bwd(x, g, lo, hi):
    """Gradient passes where lo <= x <= hi (bounds included), zero outside."""
    out = np.empty_like(g)
    for i in prange(g.size):
        v = x[i]
        out[i] = g[i] if (v >= lo and v <= hi) else 0.0
    return out


@kernel
def relu_fwd(x):
    out = np.empty_like(x)
    for i in prange(x.size):
        v = x[i]
        out[i] = 0.0 if v <= 0 else v  # NaN fails every comparison, so it passes through
    return out


@kernel
def relu_bwd(y, g):
    """Gradient 0 where y <= 0 (so 0 at x == 0), and passed through where y is NaN, like PyTorch."""
    out = np.empty_like(g)
    for i in prange(g.size):
        out[i] = 0.0 if y[i] <= 0 else g[i]
    return out


@kernel
def leaky_relu_fwd(x, slope):
    out = np.empty_like(x)
    for i in prange(x.size):
        v = x[i]
        out[i] = v if v > 0 else v * slope
    return out


@kernel
def leaky_relu_bwd(x, g, slope):
    out = np.empty_like(g)
    for i in prange(g.size):
        out[i] = g[i] if x[i] > 0 else g[i] * slope
    return out


@kernel
def elu_fwd(x, alpha):
    out = np.empty_like(x)
    for i in prange(x.size):
        v = x[i]
        out[i] = v if v > 0 else alpha * math.expm1(v)
    return out


@kernel
def elu_bwd(x, g, alpha):
    out = np.empty_like(g)
    for i in prange(g.size):
        v = x[i]
        out[i] = g[i] * alpha * math.exp(v) if v <= 0 else g[i]  # NaN passes g, like PyTorch
    return out


@kernel
def gelu_fwd(x, approximate):
    """Exact GELU x * Phi(x), or the tanh approximation when ``approximate``."""
    out = np.empty_like(x)
    c = math.sqrt(2.0 / math.pi)
    for i in prange(x.size):
        v = x[i]
        if approximate:
            out[i] = 0.5 * v * (1.0 + math.tanh(c * (v + 0.044715 * v * v * v)))
        else:
            out[i] = 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0)))
    return out


@kernel
def gelu_bwd(x, g, approximate):
    out = np.empty_like(g)
    c = math.sqrt(2.0 / math.pi)
    for i in prange(g.size):
        v = float(x[i])
        if approximate:
            inner = c * (v + 0.044715 * v * v * v)
            t = math.tanh(inner)
            d = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * v * v)
        else:
            cdf = 0.5 * (1.0 + math.erf(v / math.sqrt(2.0)))
            pdf = math.exp(-0.5 * v * v) / math.sqrt(2.0 * math.pi)
            d = cdf + v * pdf
        out[i] = g[i] * d
    return out


@kernel
def sigmoid_fwd(x):
    out = np.empty_like(x)
    for i in prange(x.size):
        v = x[i]
        if v >= 0:
            out[i] = 1.0 / (1.0 + np.exp(-v))
        else:
            e = np.exp(v)
            out[i] = e / (1.0 + e)
    return out


@kernel
def sigmoid_bwd(y, g):
    out = np.empty_like(g)
    for i in prange(g.size):
        out[i] = g[i] * y[i] * (1.0 - y[i])
    return out


@kernel
def tanh_fwd(x):
    out = np.empty_like(x)
    for i in prange(x.size):
        out[i] = np.tanh(x[i])
    return out


@kernel
def tanh_bwd(y, g):
    out = np.empty_like(g)
    for i in prange(g.size):
        out[i] = g[i] * (1.0 - y[i] * y[i])
    return out


@kernel
def softplus_fwd(x):
    """log(1 + exp(x)) computed as max(x, 0) + log1p(exp(-|x|)): no overflow for large |x|."""
    out = np.empty_like(x)
    for i in prange(x.size):
        v = x[i]
        out[i] = max(v, 0.0) + math.log1p(math.exp(-abs(v)))
    return out


@kernel
def softplus_bwd(x, g):
    out = np.empty_like(g)
    for i in prange(g.size):
        v = x[i]
        if v >= 0:
            s = 1.0 / (1.0 + math.exp(-v))
        else:
            e = math.exp(v)
            s = e / (1.0 + e)
        out[i] = g[i] * s
    return out
