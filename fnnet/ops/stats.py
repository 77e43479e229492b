"""``summarize``: one-pass statistics of an array (not differentiable: it describes values)."""

from __future__ import annotations

import math

import numpy as np

from .. import kernels as K
from ..autodiff import half, primitive
from ._validate import check_float, contiguous, value

__all__ = ["summarize", "gradient_probe"]


def summarize(x, *, bins: int = 0) -> dict:
    """Mean, std, min, max, fraction of exact zeros, NaN and inf counts of ``x``, in one kernel pass.

    Args:
        x: float array (or tracer) of any shape.
        bins: when > 0, also a histogram of the finite values over ``[min, max]``.

    Returns:
        ``{"mean", "std", "min", "max", "zero_fraction", "nan_count", "inf_count", "size"}`` (floats/ints;
        mean/std/min/max over finite values, population std), plus ``"histogram": (counts, edges)``.
    """
    x = check_float("summarize", "x", x)
    flat = contiguous(half.widen(value(x))).reshape(-1)
    count, s, ss, mn, mx, zeros, nans, infs = K.summary_stats(flat)
    mean = s / count if count else math.nan
    var = max(ss / count - mean * mean, 0.0) if count else math.nan
    out = {"mean": mean, "std": math.sqrt(var), "min": mn if count else math.nan, "max": mx if count else math.nan,
           "zero_fraction": zeros / flat.size if flat.size else math.nan, "nan_count": int(nans),
           "inf_count": int(infs), "size": int(flat.size)}
    if bins:
        lo, hi = (mn, mx) if count else (0.0, 1.0)
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        out["histogram"] = (K.histogram(flat, lo, hi, int(bins)), np.linspace(lo, hi, int(bins) + 1))
    return out


def _probe_fwd(x, callback):
    return x, None


def _probe_bwd(res, g, callback):
    callback(g)
    return (g,)


_gradient_probe = primitive("gradient_probe", _probe_fwd, _probe_bwd, argnames=("x",))


def gradient_probe(x, callback):
    """Identity on ``x`` whose backward calls ``callback(g)`` with the cotangent (plain array) of ``x``.

    Used by activation statistics to observe gradients; ``callback`` must not modify ``g``.
    """
    x = check_float("gradient_probe", "x", x)
    return _gradient_probe(x, callback=callback)
