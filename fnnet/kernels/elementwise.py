"""Unary elementwise kernels: math functions and activations, forward and backward.

Every kernel takes flat (1-D), C-contiguous float32/float64 arrays of equal length, validated by the
caller, and returns a new array of the same dtype.  Backward kernels take the residual the forward
saved (input ``x`` or output ``y``, whichever the derivative is cheaper from) and the cotangent ``g``.

The transcendental functions (exp, log, expm1, tanh, sigmoid, softplus, erf, GELU) come from ``_vmath``:
branch-free, so these loops vectorise, and evaluated in the data's own precision.  Kernels calling them are
decorated with ``_vmath_kernel`` (``_vmath``'s source stamp in the cache key) and use no fastmath.

The activations a recurrent cell or a small MLP runs on a few thousand elements per call (ReLU, sigmoid,
tanh) run serially below ``SERIAL_WORK`` elements instead of paying a parallel launch.
"""

import numpy as np
from numba import prange

from . import _vmath as vm
from ._jit import SERIAL_WORK, kernel


def _vmath_kernel(fn):
    """``kernel`` for kernels that call ``_vmath``: its source hash is part of their Numba cache key."""
    return kernel(vm.cache_key_suffix(fn))


@kernel
def neg_fwd(x):
    out = np.empty_like(x)
    for i in prange(x.size):
        out[i] = -x[i]
    return out


@_vmath_kernel
def exp_fwd(x):
    out = np.empty_like(x)
    for i in prange(x.size):
        out[i] = vm.exp(x[i])
    return out


@kernel
def exp_bwd(y, g):
    out = np.empty_like(g)
    for i in prange(g.size):
        out[i] = g[i] * y[i]
    return out


@_vmath_kernel
def log_fwd(x):
    out = np.empty_like(x)
    for i in prange(x.size):
        out[i] = vm.log(x[i])
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
    # NaN fails every comparison, so it passes through
    if x.size < SERIAL_WORK:
        for i in range(x.size):
            v = x[i]
            out[i] = 0.0 if v <= 0 else v
    else:
        for i in prange(x.size):
            v = x[i]
            out[i] = 0.0 if v <= 0 else v
    return out


@kernel
def relu_bwd(y, g):
    """Gradient 0 where y <= 0 (so 0 at x == 0), and passed through where y is NaN, like PyTorch."""
    out = np.empty_like(g)
    if g.size < SERIAL_WORK:
        for i in range(g.size):
            out[i] = 0.0 if y[i] <= 0 else g[i]
    else:
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


@_vmath_kernel
def elu_fwd(x, alpha):
    out = np.empty_like(x)
    for i in prange(x.size):
        v = x[i]
        negative_part = alpha * vm.expm1(v)
        out[i] = v if v > 0 else negative_part  # NaN fails the comparison and takes expm1(NaN)
    return out


@_vmath_kernel
def elu_bwd(x, g, alpha):
    out = np.empty_like(g)
    for i in prange(g.size):
        v = x[i]
        negative_part = g[i] * alpha * vm.exp(v)
        out[i] = negative_part if v <= 0 else g[i]  # NaN passes g, like PyTorch
    return out


@_vmath_kernel
def gelu_exact_fwd(x):
    """GELU x * Phi(x) (PyTorch's approximate='none')."""
    out = np.empty_like(x)
    for i in prange(x.size):
        out[i] = vm.gelu(x[i])
    return out


@_vmath_kernel
def gelu_exact_bwd(x, g):
    out = np.empty_like(g)
    for i in prange(g.size):
        out[i] = g[i] * vm.gelu_grad(x[i])
    return out


@_vmath_kernel
def gelu_tanh_fwd(x):
    """The tanh approximation x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x**3))) / 2 (approximate='tanh')."""
    out = np.empty_like(x)
    for i in prange(x.size):
        out[i] = vm.gelu_tanh(x[i])
    return out


@_vmath_kernel
def gelu_tanh_bwd(x, g):
    out = np.empty_like(g)
    for i in prange(g.size):
        out[i] = g[i] * vm.gelu_tanh_grad(x[i])
    return out


def gelu_fwd(x, approximate):
    """Exact GELU, or the tanh approximation when ``approximate`` (two kernels: each compiles on first use)."""
    return gelu_tanh_fwd(x) if approximate else gelu_exact_fwd(x)


def gelu_bwd(x, g, approximate):
    return gelu_tanh_bwd(x, g) if approximate else gelu_exact_bwd(x, g)


@_vmath_kernel
def erf_fwd(x):
    out = np.empty_like(x)
    for i in prange(x.size):
        out[i] = vm.erf(x[i])
    return out


@_vmath_kernel
def erf_bwd(x, g):
    """d erf(x)/dx = 2/sqrt(pi) * exp(-x^2)."""
    out = np.empty_like(g)
    for i in prange(g.size):
        out[i] = g[i] * vm.erf_grad(x[i])
    return out


@_vmath_kernel
def sigmoid_fwd(x):
    out = np.empty_like(x)
    if x.size < SERIAL_WORK:
        for i in range(x.size):
            out[i] = vm.sigmoid(x[i])
    else:
        for i in prange(x.size):
            out[i] = vm.sigmoid(x[i])
    return out


@kernel
def sigmoid_bwd(y, g):
    out = np.empty_like(g)
    if g.size < SERIAL_WORK:
        for i in range(g.size):
            out[i] = g[i] * y[i] * (1.0 - y[i])
    else:
        for i in prange(g.size):
            out[i] = g[i] * y[i] * (1.0 - y[i])
    return out


@_vmath_kernel
def tanh_fwd(x):
    out = np.empty_like(x)
    if x.size < SERIAL_WORK:
        for i in range(x.size):
            out[i] = vm.tanh(x[i])
    else:
        for i in prange(x.size):
            out[i] = vm.tanh(x[i])
    return out


@kernel
def tanh_bwd(y, g):
    out = np.empty_like(g)
    if g.size < SERIAL_WORK:
        for i in range(g.size):
            out[i] = g[i] * (1.0 - y[i] * y[i])
    else:
        for i in prange(g.size):
            out[i] = g[i] * (1.0 - y[i] * y[i])
    return out


@_vmath_kernel
def softplus_fwd(x):
    """log(1 + exp(x)) computed as max(x, 0) + log1p(exp(-|x|)): no overflow for large |x|."""
    out = np.empty_like(x)
    for i in prange(x.size):
        out[i] = vm.softplus(x[i])
    return out


@_vmath_kernel
def softplus_bwd(x, g):
    """d softplus(x)/dx = sigmoid(x)."""
    out = np.empty_like(g)
    for i in prange(g.size):
        out[i] = g[i] * vm.sigmoid(x[i])
    return out
