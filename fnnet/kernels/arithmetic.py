"""Binary elementwise kernels (add, subtract, multiply, divide, power, maximum, minimum, where).

Operands are flat, C-contiguous arrays.  Broadcasting is not done here: the caller either expands an
operand to the output's length, or passes a one-element array with stride 0 (``sa``/``sb`` are 1 for a
full operand and 0 for a scalar one), so ``a[i * sa]`` reads the right element in both cases.
"""

import math

import numpy as np
from numba import prange

from ._jit import kernel


@kernel
def add_fwd(a, b, sa, sb, n):
    out = np.empty(n, dtype=a.dtype)
    for i in prange(n):
        out[i] = a[i * sa] + b[i * sb]
    return out


@kernel
def subtract_fwd(a, b, sa, sb, n):
    out = np.empty(n, dtype=a.dtype)
    for i in prange(n):
        out[i] = a[i * sa] - b[i * sb]
    return out


@kernel
def multiply_fwd(a, b, sa, sb, n):
    out = np.empty(n, dtype=a.dtype)
    for i in prange(n):
        out[i] = a[i * sa] * b[i * sb]
    return out


@kernel
def multiply_bwd(a, b, g, sa, sb):
    """Returns (g * b, g * a), each of the output's length (the caller sums over broadcast axes)."""
    n = g.size
    ga = np.empty_like(g)
    gb = np.empty_like(g)
    for i in prange(n):
        ga[i] = g[i] * b[i * sb]
        gb[i] = g[i] * a[i * sa]
    return ga, gb


@kernel
def divide_fwd(a, b, sa, sb, n):
    out = np.empty(n, dtype=a.dtype)
    for i in prange(n):
        out[i] = a[i * sa] / b[i * sb]
    return out


@kernel
def divide_bwd(a, b, g, sa, sb):
    """Returns (g / b, -g * a / b**2)."""
    n = g.size
    ga = np.empty_like(g)
    gb = np.empty_like(g)
    for i in prange(n):
        bi = b[i * sb]
        q = g[i] / bi
        ga[i] = q
        gb[i] = -q * a[i * sa] / bi
    return ga, gb


@kernel
def power_fwd(a, b, sa, sb, n):
    out = np.empty(n, dtype=a.dtype)
    for i in prange(n):
        out[i] = a[i * sa] ** b[i * sb]
    return out


@kernel
def power_bwd(a, b, y, g, sa, sb):
    """Returns (g * b * a**(b-1), g * y * log(a)); the exponent's gradient is 0 where a <= 0."""
    n = g.size
    ga = np.empty_like(g)
    gb = np.empty_like(g)
    for i in prange(n):
        ai = a[i * sa]
        bi = b[i * sb]
        if bi == 0.0:
            ga[i] = 0.0
        else:
            ga[i] = g[i] * bi * ai ** (bi - 1.0)
        gb[i] = g[i] * y[i] * math.log(ai) if ai > 0 else 0.0
    return ga, gb


@kernel
def maximum_fwd(a, b, sa, sb, n):
    out = np.empty(n, dtype=a.dtype)
    for i in prange(n):
        ai = a[i * sa]
        bi = b[i * sb]
        out[i] = ai if (ai > bi or ai != ai) else bi  # a NaN in either operand wins, as in NumPy
    return out


@kernel
def minimum_fwd(a, b, sa, sb, n):
    out = np.empty(n, dtype=a.dtype)
    for i in prange(n):
        ai = a[i * sa]
        bi = b[i * sb]
        out[i] = ai if (ai < bi or ai != ai) else bi  # a NaN in either operand wins, as in NumPy
    return out


@kernel
def select_bwd(a, b, g, sa, sb, pick_larger):
    """VJP of maximum (``pick_larger``) or minimum: the chosen operand gets g, ties split it in half; where
    either operand is NaN (so is the output) both get g, like PyTorch."""
    n = g.size
    ga = np.empty_like(g)
    gb = np.empty_like(g)
    for i in prange(n):
        ai = a[i * sa]
        bi = b[i * sb]
        if ai != ai or bi != bi:
            ga[i] = g[i]
            gb[i] = g[i]
        elif ai == bi:
            ga[i] = 0.5 * g[i]
            gb[i] = 0.5 * g[i]
        elif (ai > bi) == pick_larger:
            ga[i] = g[i]
            gb[i] = 0.0
        else:
            ga[i] = 0.0
            gb[i] = g[i]
    return ga, gb


@kernel
def where_fwd(cond, a, b, sc, sa, sb, n):
    out = np.empty(n, dtype=a.dtype)
    for i in prange(n):
        out[i] = a[i * sa] if cond[i * sc] else b[i * sb]
    return out


@kernel
def where_bwd(cond, g, sc):
    n = g.size
    ga = np.empty_like(g)
    gb = np.empty_like(g)
    for i in prange(n):
        if cond[i * sc]:
            ga[i] = g[i]
            gb[i] = 0.0
        else:
            ga[i] = 0.0
            gb[i] = g[i]
    return ga, gb
