"""Binary elementwise kernels (add, subtract, multiply, divide, power, maximum, minimum, where).

Operands are flat, C-contiguous arrays.  Broadcasting is not done here: the caller either expands an
operand to the output's length, or passes a one-element array with stride 0 (``sa``/``sb`` are 1 for a
full operand and 0 for a scalar one), so ``a[i * sa]`` reads the right element in both cases.

The forward kernels of the cheap operators (and the multiply/divide backward) keep one loop per case (both
full, scalar ``b``, scalar ``a``) so that each loop reads memory at unit stride and LLVM vectorises it:
the single strided loop ``a[i * sa] + b[i * sb]`` did not vectorise and took 1.8 ms for 1M float32 adds,
7x NumPy's 0.24 ms, against 0.24-0.25 ms for the split loops.  They are serial: they are bound by memory,
a second thread bought nothing at 1M elements (0.242 vs 0.254 ms), and small arrays pay for the launch.
"""

import math

import numpy as np
from numba import prange

from ._jit import helper, kernel


@helper(inline=True)
def _pick(x, y, larger):
    """``max(x, y)`` when ``larger`` else ``min(x, y)``; a NaN in either operand wins, as in NumPy."""
    return x if ((x > y if larger else x < y) or x != x) else y


@kernel(parallel=False)
def add_fwd(a, b, sa, sb, n):
    out = np.empty(n, dtype=a.dtype)
    if sa == sb:
        for i in range(n):
            out[i] = a[i] + b[i]
    elif sb == 0:
        y = b[0]
        for i in range(n):
            out[i] = a[i] + y
    else:
        x = a[0]
        for i in range(n):
            out[i] = x + b[i]
    return out


@kernel(parallel=False)
def subtract_fwd(a, b, sa, sb, n):
    out = np.empty(n, dtype=a.dtype)
    if sa == sb:
        for i in range(n):
            out[i] = a[i] - b[i]
    elif sb == 0:
        y = b[0]
        for i in range(n):
            out[i] = a[i] - y
    else:
        x = a[0]
        for i in range(n):
            out[i] = x - b[i]
    return out


@kernel(parallel=False)
def multiply_fwd(a, b, sa, sb, n):
    out = np.empty(n, dtype=a.dtype)
    if sa == sb:
        for i in range(n):
            out[i] = a[i] * b[i]
    elif sb == 0:
        y = b[0]
        for i in range(n):
            out[i] = a[i] * y
    else:
        x = a[0]
        for i in range(n):
            out[i] = x * b[i]
    return out


@kernel(parallel=False)
def multiply_bwd(a, b, g, sa, sb):
    """Returns (g * b, g * a), each of the output's length (the caller sums over broadcast axes)."""
    n = g.size
    return multiply_fwd(g, b, 1, sb, n), multiply_fwd(g, a, 1, sa, n)


@kernel(parallel=False)
def divide_fwd(a, b, sa, sb, n):
    out = np.empty(n, dtype=a.dtype)
    if sa == sb:
        for i in range(n):
            out[i] = a[i] / b[i]
    elif sb == 0:
        y = b[0]
        for i in range(n):
            out[i] = a[i] / y
    else:
        x = a[0]
        for i in range(n):
            out[i] = x / b[i]
    return out


@kernel(parallel=False)
def divide_bwd(a, b, g, sa, sb):
    """Returns (g / b, -g * a / b**2), the second computed as ``-(g / b) * a / b``."""
    n = g.size
    ga = divide_fwd(g, b, 1, sb, n)
    gb = np.empty_like(g)
    if sa == sb:
        for i in range(n):
            gb[i] = -ga[i] * a[i] / b[i]
    elif sb == 0:
        y = b[0]
        for i in range(n):
            gb[i] = -ga[i] * a[i] / y
    else:
        x = a[0]
        for i in range(n):
            gb[i] = -ga[i] * x / b[i]
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


@kernel(parallel=False)
def select_fwd(a, b, sa, sb, n, pick_larger):
    """``maximum`` (``pick_larger``) or ``minimum``; a NaN in either operand wins, as in NumPy."""
    out = np.empty(n, dtype=a.dtype)
    if sa == sb:
        for i in range(n):
            out[i] = _pick(a[i], b[i], pick_larger)
    elif sb == 0:
        y = b[0]
        for i in range(n):
            out[i] = _pick(a[i], y, pick_larger)
    else:
        x = a[0]
        for i in range(n):
            out[i] = _pick(x, b[i], pick_larger)
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
