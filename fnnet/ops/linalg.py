"""Matrix products: ``matmul`` and the fused ``linear`` (x @ w + b, optionally followed by ReLU)."""

from __future__ import annotations

import numpy as np

from .. import kernels as K
from ..autodiff import primitive
from ._validate import check_float, check_same_dtype, contiguous, value

__all__ = ["matmul", "linear"]


def _linear_fwd(x, w, b, relu=False):
    x2 = contiguous(x).reshape(-1, x.shape[-1])
    has_bias = b is not None
    y = K.linear_fwd(x2, contiguous(w), b if has_bias else w[0], has_bias, relu)
    return y.reshape(*x.shape[:-1], w.shape[1]), (x2, w, has_bias, y if relu else None, x.shape)


def _linear_bwd(res, g, needs, relu=False):
    x2, w, has_bias, y, x_shape = res
    g2 = contiguous(g).reshape(-1, w.shape[1])
    if relu:
        g2 = K.relu_mask(y, g2)
    gx, gw, gb = K.linear_bwd(x2, w, g2, needs[0], needs[1], has_bias and needs[2])
    return (gx.reshape(x_shape) if needs[0] else None, gw if needs[1] else None,
            gb if has_bias and needs[2] else None)


_linear = primitive("linear", _linear_fwd, _linear_bwd, argnames=("x", "weight", "bias"), input_mask=True)


def linear(x, weight, bias=None, *, activation=None):
    """Affine map ``x @ weight + bias`` over the last axis, one BLAS call with the bias (and ReLU) fused.

    Args:
        x: ``(..., in_features)``.
        weight: ``(in_features, out_features)`` (fnnet's layout; a PyTorch weight is its transpose).
        bias: ``(out_features,)`` or None.
        activation: None or ``"relu"`` (fused into the same pass, forward and backward).

    Returns:
        ``(..., out_features)``, the dtype of ``x``.

    Raises:
        TypeError: non-float or mismatched dtypes.  ValueError: incompatible shapes.
    """
    x = check_float("linear", "x", x)
    weight = check_float("linear", "weight", weight)
    if bias is not None:
        bias = check_float("linear", "bias", bias)
    check_same_dtype("linear", x=x, weight=weight, bias=bias)
    xs, ws = value(x).shape, value(weight).shape
    if len(ws) != 2:
        raise ValueError(f"linear: weight must be 2-D (in_features, out_features), got shape {ws}")
    if len(xs) < 1 or xs[-1] != ws[0]:
        raise ValueError(
            f"linear: x.shape[-1] must be {ws[0]} (the in_features of weight {ws}), got x.shape={xs}; "
            "add Flatten() before Linear, or check the weight layout (in, out)"
        )
    if bias is not None and value(bias).shape != (ws[1],):
        raise ValueError(f"linear: bias must have shape ({ws[1]},), got {value(bias).shape}")
    if activation not in (None, "relu"):
        raise ValueError(f"linear: activation must be None or 'relu', got {activation!r}")
    return _linear(x, weight, bias, relu=activation == "relu")


def _matmul_fwd(a, b):
    a3, b3 = contiguous(a), contiguous(b)
    if b.ndim == 2:  # fold every leading axis of a into rows: one GEMM
        y = K.matmul_fwd(a3.reshape(-1, a.shape[-1]), b3).reshape(*a.shape[:-1], b.shape[1])
        return y, (a3, b3)
    batch = a.shape[:-2]
    y = K.batched_matmul_fwd(a3.reshape(-1, *a.shape[-2:]), b3.reshape(-1, *b.shape[-2:]))
    return y.reshape(*batch, a.shape[-2], b.shape[-1]), (a3, b3)


def _matmul_bwd(res, g):
    a, b = res
    g = contiguous(g)
    if b.ndim == 2:
        a2 = a.reshape(-1, a.shape[-1])
        g2 = g.reshape(-1, b.shape[1])
        return (K.matmul_fwd(g2, np.ascontiguousarray(b.T)).reshape(a.shape),
                K.matmul_fwd(np.ascontiguousarray(a2.T), g2))
    ga, gb = K.batched_matmul_bwd(a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:]),
                                  g.reshape(-1, *g.shape[-2:]))
    return ga.reshape(a.shape), gb.reshape(b.shape)


_matmul = primitive("matmul", _matmul_fwd, _matmul_bwd, argnames=("a", "b"))


def matmul(a, b):
    """Matrix product with numpy's rules for 1-D operands.

    Args:
        a: ``(..., n, k)`` or ``(k,)``.
        b: ``(k, m)``, ``(k,)``, or ``(..., k, m)`` with the same leading (batch) shape as ``a``.

    Returns:
        ``(..., n, m)``, with the axes of 1-D operands dropped as numpy does.
    """
    from .shape import reshape  # local: shape ops live in their own family

    a = check_float("matmul", "a", a)
    b = check_float("matmul", "b", b)
    check_same_dtype("matmul", a=a, b=b)
    sa, sb = value(a).shape, value(b).shape
    if len(sa) == 0 or len(sb) == 0:
        raise ValueError(f"matmul: operands must be at least 1-D, got shapes {sa} and {sb}; use multiply for scalars")
    squeeze_a = len(sa) == 1
    squeeze_b = len(sb) == 1
    if squeeze_a:
        a = reshape(a, (1, sa[0]))
    if squeeze_b:
        b = reshape(b, (sb[0], 1))
    sa, sb = value(a).shape, value(b).shape
    if sa[-1] != sb[-2]:
        raise ValueError(f"matmul: inner dimensions differ: a {sa} has {sa[-1]} columns, b {sb} has {sb[-2]} rows")
    if len(sb) > 2 and sa[:-2] != sb[:-2]:
        raise ValueError(
            f"matmul: batch shapes of a {sa} and b {sb} must be equal (broadcasting batch dimensions is not "
            "supported); expand them explicitly"
        )
    y = _matmul(a, b)
    if squeeze_a or squeeze_b:
        ys = value(y).shape
        new = ys[:-2] + ((ys[-2],) if not squeeze_a else ()) + ((ys[-1],) if not squeeze_b else ())
        y = reshape(y, new)
    return y
