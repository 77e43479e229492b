"""Matrix products: ``matmul`` and the fused ``linear`` (x @ w + b, optionally followed by ReLU)."""

from __future__ import annotations

import math

import numpy as np

from .. import kernels as K
from ..kernels import broadcast_matmul as KB
from ..kernels import dense_half as KH
from ..autodiff import half, primitive
from ..autodiff.batching import expand_examples, unbroadcast_examples
from ._validate import check_float, check_same_dtype, contiguous, value

__all__ = ["matmul", "linear"]


def _linear_fwd(x, w, b, relu=False):
    x2 = contiguous(x).reshape(-1, x.shape[-1])
    w = contiguous(w)  # the BLAS kernels read matrices with forward strides only (kernels.blas.gemm)
    has_bias = b is not None
    y = K.linear_fwd(x2, w, b if has_bias else w[0], has_bias, relu)
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


def _bits(a):
    """A float16 array's bits as a C-contiguous uint16 array (what the half kernels read)."""
    return contiguous(a).view(np.uint16)


def _linear_fwd_half(x, w, b, relu=False):
    """``_linear_fwd`` on float16 arrays in one kernel (bitwise widen, float32 kernel, narrow); the residuals
    are the float16 arrays the widening path would store (``fnnet.autodiff.half.def_native``)."""
    x2 = contiguous(x).reshape(-1, x.shape[-1])
    w = contiguous(w)
    has_bias = b is not None
    y = KH.linear_fwd_half(_bits(x2), _bits(w), _bits(b) if has_bias else _bits(w)[0], has_bias, relu)
    y = y.view(np.float16)
    return y.reshape(*x.shape[:-1], w.shape[1]), (x2, w, has_bias, y if relu else None, x.shape)


def _linear_bwd_half(res, g, needs, relu=False):
    x2, w, has_bias, y, x_shape = res
    g2 = _bits(g).reshape(-1, w.shape[1])
    gx, gw, gb = KH.linear_bwd_half(_bits(x2), _bits(w), g2, _bits(y) if relu else g2, relu, needs[0], needs[1],
                                    has_bias and needs[2])
    return (gx.view(np.float16).reshape(x_shape) if needs[0] else None,
            gw.view(np.float16) if needs[1] else None, gb.view(np.float16) if has_bias and needs[2] else None)


half.def_native(_linear, _linear_fwd_half, _linear_bwd_half)


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
        TypeError: non-float or mismatched dtypes.
        ValueError: incompatible shapes.
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


def _batch_index(batch, out_batch):
    """For each matrix of the broadcast batch ``out_batch``, the index of the operand matrix it reads."""
    own = np.arange(math.prod(batch), dtype=np.int64).reshape(batch)
    return np.ascontiguousarray(np.broadcast_to(own, out_batch)).reshape(-1)


def _groups(index, count):
    """``(order, starts)``: the outputs reading operand matrix ``j`` are ``order[starts[j]:starts[j + 1]]``."""
    order = np.argsort(index, kind="stable")
    return order, np.searchsorted(index[order], np.arange(count + 1)).astype(np.int64)


def _stack(x):
    """``x (*batch, r, c)`` as a contiguous ``(prod(batch), r, c)`` (sizes explicit: empty arrays work too)."""
    return contiguous(x).reshape(math.prod(x.shape[:-2]), *x.shape[-2:])


def _rows(x3):
    """A stack ``(s, r, c)`` as ``(s * r, c)``."""
    return x3.reshape(x3.shape[0] * x3.shape[1], x3.shape[2])


def _matmul_fwd(a, b):
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a3, b3 = _stack(a), _stack(b)
    if b3.shape[0] == 1:  # b is one matrix: fold every batch axis of a into rows, one GEMM
        y = K.matmul_fwd(_rows(a3), b3[0])
        index = None
    else:
        index = (_batch_index(a.shape[:-2], batch), _batch_index(b.shape[:-2], batch))
        y = KB.broadcast_matmul_fwd(a3, b3, *index)
    return y.reshape(*batch, a.shape[-2], b.shape[-1]), (a3, b3, index, a.shape, b.shape)


def _matmul_bwd(res, g, needs):
    a3, b3, index, a_shape, b_shape = res
    g3 = _stack(g)
    if index is None:
        g2 = _rows(g3)
        ga = K.matmul_fwd(g2, np.ascontiguousarray(b3[0].T)) if needs[0] else None
        gb = K.matmul_fwd(np.ascontiguousarray(_rows(a3).T), g2) if needs[1] else None
    else:
        ga, gb = KB.broadcast_matmul_bwd(a3, b3, g3, *index, *_groups(index[0], a3.shape[0]),
                                         *_groups(index[1], b3.shape[0]), needs[0], needs[1])
    return ga.reshape(a_shape) if needs[0] else None, gb.reshape(b_shape) if needs[1] else None


_matmul = primitive("matmul", _matmul_fwd, _matmul_bwd, argnames=("a", "b"), input_mask=True)


def matmul(a, b):
    """Matrix product with numpy's rules: batch axes broadcast, 1-D operands are vectors.

    When ``b`` is a single matrix (no batch axes, or only size-1 ones) every batch axis of ``a`` is folded
    into the rows of one GEMM.  Otherwise each output matrix is one BLAS call on the operand matrices it
    reads (a broadcast operand is not copied), and the VJP sums the cotangents over the broadcast batch
    axes in a fixed order.

    Args:
        a: ``(*batch_a, n, k)`` or ``(k,)``.
        b: ``(*batch_b, k, m)`` or ``(k,)``; ``batch_a`` and ``batch_b`` must broadcast.

    Returns:
        ``(*broadcast(batch_a, batch_b), n, m)``, with the axes of 1-D operands dropped as numpy does.

    Raises:
        TypeError: non-float or mismatched dtypes.
        ValueError: a 0-d operand, inner sizes that differ, batch shapes that do not broadcast.
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
    try:
        np.broadcast_shapes(sa[:-2], sb[:-2])
    except ValueError:
        raise ValueError(
            f"matmul: batch shapes {sa[:-2]} of a {sa} and {sb[:-2]} of b {sb} do not broadcast (numpy rules: "
            "trailing batch dimensions must be equal or 1); reshape or transpose one operand"
        ) from None
    y = _matmul(a, b)
    if squeeze_a or squeeze_b:
        ys = value(y).shape
        new = ys[:-2] + ((ys[-2],) if not squeeze_a else ()) + ((ys[-1],) if not squeeze_b else ())
        y = reshape(y, new)
    return y


# ---------------------------------------------------------------------- fnnet.vmap batching rules

def _per_example_weight_grads(x3, g3, need_w, need_b):
    """Each example's ``x.T @ g`` and bias gradient (the column sums of ``g``), for ``x3 (n or 1, rows, in)``
    and ``g3 (n, rows, out)``: one batched product instead of their sum over the batch."""
    gw = gb = None
    if need_w and x3.shape[1] == 1:  # one row per example: outer products, exactly what a k=1 GEMM computes
        gw = x3[:, 0, :, None] * g3[:, 0, None, :]
    elif need_w:
        gw = np.matmul(x3.transpose(0, 2, 1), g3)
    if need_b:
        gb = g3[:, 0].copy() if g3.shape[1] == 1 else g3.sum(axis=1)
    return gw, gb


def _linear_batch_fwd(values, batched, relu=False):
    x, w, b = values
    if not (batched[1] or batched[2]):  # one weight for every example: the examples' rows go through one GEMM
        return _linear_fwd(x, w, b, relu)
    x_shape = x.shape[1:] if batched[0] else x.shape
    x3 = contiguous(x).reshape(x.shape[0] if batched[0] else 1, -1, x.shape[-1])
    y3 = np.matmul(x3, w)  # per-example weights (n, in, out), or a per-example bias only
    if b is not None:
        y3 = y3 + (b[:, None, :] if batched[2] else b)
    if relu:
        y3 = np.where(y3 < 0, y3.dtype.type(0), y3)
    out = y3.reshape(y3.shape[0], *x_shape[:-1], y3.shape[-1])
    return out, (x3, w, b is not None, y3 if relu else None, x_shape)


def _linear_batch_vjp(res, g, batched, needs, relu=False):
    n = g.shape[0]
    if not (batched[1] or batched[2]):
        x2, w, has_bias, y, x_shape = res
        g2 = contiguous(g).reshape(-1, w.shape[1])
        if relu:
            g2 = K.relu_mask(y, g2)
        gx = K.linear_bwd(x2, w, g2, True, False, False)[0].reshape(x_shape) if needs[0] else None
        x3 = x2.reshape(n, -1, x2.shape[1])
    else:
        x3, w, has_bias, y3, x_shape = res
        g2 = contiguous(g).reshape(-1, w.shape[-1])
        if relu:
            g2 = np.where(y3.reshape(g2.shape) <= 0, g2.dtype.type(0), g2)
        gx = np.matmul(g2.reshape(n, -1, w.shape[-1]), np.swapaxes(w, -1, -2)) if needs[0] else None
        gx = None if gx is None else gx.reshape(n, *x_shape)
    gw, gb = _per_example_weight_grads(x3, g2.reshape(n, -1, w.shape[-1]), needs[1], has_bias and needs[2])
    return gx, gw, gb


_linear.defbatch(_linear_batch_fwd, _linear_batch_vjp)


def _matmul_batch_fwd(values, batched):
    shapes = tuple(v.shape[1:] if b else v.shape for v, b in zip(values, batched))
    ndim = max(len(s) for s in shapes)
    a, b = (expand_examples(v, bt, ndim) for v, bt in zip(values, batched))
    y, res = _matmul_fwd(a, b)
    return y, (res, a, b, shapes)


def _matmul_batch_vjp(residuals, g, batched, needs):
    """Batched operands through the primitive's own VJP; an unbatched operand's cotangent per example."""
    res, a, b, shapes = residuals
    own = (needs[0] and batched[0], needs[1] and batched[1])
    ga, gb = _matmul_bwd(res, g, own) if any(own) else (None, None)
    if needs[0] and not batched[0]:
        ga = np.matmul(g, np.swapaxes(b, -1, -2))
    if needs[1] and not batched[1]:
        gb = np.matmul(np.swapaxes(a, -1, -2), g)
    return unbroadcast_examples(ga, shapes[0]), unbroadcast_examples(gb, shapes[1])


_matmul.defbatch(_matmul_batch_fwd, _matmul_batch_vjp)
