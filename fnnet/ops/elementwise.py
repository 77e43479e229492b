"""Unary elementwise ops: math functions and activations.

Each op is one line of registration over a kernel pair from ``fnnet.kernels.elementwise``; the table
says which residual the VJP needs (the input ``x`` or the output ``y``) and which keyword parameters
the kernels take, in order.
"""

from __future__ import annotations

import numpy as np

from .. import kernels as K
from ..autodiff import primitive
from ..autodiff.batching import elementwise_batching
from ._validate import as_number, check_float, contiguous, value

__all__ = [
    "negative", "exp", "log", "sqrt", "abs", "clip",
    "relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softplus", "erf",
]


def _unary(name, fwd_kernel, bwd_kernel, saves, param_names=()):
    """Register ``name`` over a kernel pair; ``saves`` is "x" or "y" (what the VJP kernel reads)."""

    def fwd(x, **params):
        flat = contiguous(x).reshape(-1)
        args = tuple(params[p] for p in param_names)
        y = fwd_kernel(flat, *args)
        return y.reshape(x.shape), (flat if saves == "x" else y)

    def bwd(saved, g, **params):
        args = tuple(params[p] for p in param_names)
        return (bwd_kernel(saved, contiguous(g).reshape(-1), *args).reshape(g.shape),)

    return primitive(name, fwd, bwd, argnames=("x",))


def _neg_bwd(saved, g):
    return (K.neg_fwd(contiguous(g).reshape(-1)).reshape(g.shape),)


_negative = primitive("negative", lambda x: (K.neg_fwd(contiguous(x).reshape(-1)).reshape(x.shape), None),
                      _neg_bwd, argnames=("x",))
_exp = _unary("exp", K.exp_fwd, K.exp_bwd, "y")
_log = _unary("log", K.log_fwd, K.log_bwd, "x")
_sqrt = _unary("sqrt", K.sqrt_fwd, K.sqrt_bwd, "y")
_abs = _unary("abs", K.abs_fwd, K.abs_bwd, "x")
_clip = _unary("clip", K.clip_fwd, K.clip_bwd, "x", ("lo", "hi"))
_relu = _unary("relu", K.relu_fwd, K.relu_bwd, "y")
_leaky_relu = _unary("leaky_relu", K.leaky_relu_fwd, K.leaky_relu_bwd, "x", ("slope",))
_elu = _unary("elu", K.elu_fwd, K.elu_bwd, "x", ("alpha",))
_gelu = _unary("gelu", K.gelu_fwd, K.gelu_bwd, "x", ("approximate",))
_sigmoid = _unary("sigmoid", K.sigmoid_fwd, K.sigmoid_bwd, "y")
_tanh = _unary("tanh", K.tanh_fwd, K.tanh_bwd, "y")
_softplus = _unary("softplus", K.softplus_fwd, K.softplus_bwd, "x")
_erf = _unary("erf", K.erf_fwd, K.erf_bwd, "x")


def _checked(op, x):
    return check_float(op, "x", x)


def _scalar(op, arg, v, dtype):
    return dtype.type(as_number(op, arg, v))


def negative(x):
    """``-x``."""
    return _negative(_checked("negative", x))


def exp(x):
    """``e**x``."""
    return _exp(_checked("exp", x))


def log(x):
    """Natural logarithm (``-inf`` at 0, ``nan`` below, as in numpy)."""
    return _log(_checked("log", x))


def sqrt(x):
    """Square root; its gradient at 0 is ``inf``."""
    return _sqrt(_checked("sqrt", x))


def abs(x):  # noqa: A001  (mirrors numpy's name)
    """``|x|``; the gradient at 0 is 0."""
    return _abs(_checked("abs", x))


def clip(x, lo, hi):
    """Clamp ``x`` to ``[lo, hi]``; the gradient passes where ``lo <= x <= hi`` (PyTorch's convention).

    Raises:
        ValueError: ``lo > hi``, or a NaN bound.
    """
    x = _checked("clip", x)
    dt = value(x).dtype
    lo, hi = _scalar("clip", "lo", lo, dt), _scalar("clip", "hi", hi, dt)
    if np.isnan(lo) or np.isnan(hi):
        raise ValueError(f"clip: lo and hi must not be NaN, got lo={lo}, hi={hi}; use -np.inf or np.inf for a "
                         "one-sided clip")
    if lo > hi:
        raise ValueError(f"clip: lo must be <= hi, got lo={lo}, hi={hi}")
    return _clip(x, lo=lo, hi=hi)


def relu(x):
    """``max(x, 0)``; gradient 0 at 0."""
    return _relu(_checked("relu", x))


def leaky_relu(x, negative_slope=0.01):
    """``x`` for ``x > 0``, ``negative_slope * x`` otherwise."""
    x = _checked("leaky_relu", x)
    return _leaky_relu(x, slope=_scalar("leaky_relu", "negative_slope", negative_slope, value(x).dtype))


def elu(x, alpha=1.0):
    """``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise."""
    x = _checked("elu", x)
    return _elu(x, alpha=_scalar("elu", "alpha", alpha, value(x).dtype))


_GELU_APPROXIMATIONS = {False: False, "none": False, True: True, "tanh": True}


def gelu(x, approximate=False):
    """Gaussian error linear unit ``x * Phi(x)``, ``Phi`` the standard normal CDF.

    Args:
        x: float array, any shape.
        approximate: ``False`` or ``"none"`` for the exact form; ``True`` or ``"tanh"`` (PyTorch's names) for
            ``x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x**3))) / 2``.

    Raises:
        ValueError: another ``approximate``.
    """
    x = _checked("gelu", x)
    key = approximate.item() if isinstance(approximate, np.bool_) else approximate
    if not isinstance(key, (bool, str)) or key not in _GELU_APPROXIMATIONS:
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh' (or False/True), got {approximate!r}; "
                         "'tanh' selects the tanh formula, 'none' the exact one")
    return _gelu(x, approximate=_GELU_APPROXIMATIONS[key])


def sigmoid(x):
    """Logistic function ``1 / (1 + exp(-x))``, evaluated without overflow."""
    return _sigmoid(_checked("sigmoid", x))


def tanh(x):
    """Hyperbolic tangent."""
    return _tanh(_checked("tanh", x))


def softplus(x):
    """``log(1 + exp(x))``, evaluated without overflow."""
    return _softplus(_checked("softplus", x))


def erf(x):
    """Error function ``2/sqrt(pi) * integral_0^x exp(-t**2) dt``; gradient ``2/sqrt(pi) * exp(-x**2)``."""
    return _erf(_checked("erf", x))


# fnnet.vmap: every unary op runs once on the whole batch
for _prim in (_negative, _exp, _log, _sqrt, _abs, _clip, _relu, _leaky_relu, _elu, _gelu, _sigmoid, _tanh, _softplus,
              _erf):
    elementwise_batching(_prim)
