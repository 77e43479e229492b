"""Convolutions over NCL and NCHW arrays, PyTorch semantics: ``conv1d``, ``conv2d`` and their shape arithmetic.

Both validate everything in Python through :mod:`fnnet.ops.geometry` (the one source of output sizes and
padding rules), then call the kernels in :mod:`fnnet.kernels.conv` (per-sample im2col + BLAS; see that
module for the scheme and the measurements behind it).  ``conv1d`` runs the 2-D kernels on a unit-height
view, so its forward and backward are the 2-D ones.  On float16 arrays both run the kernels of
:mod:`fnnet.kernels.conv_half` (``fnnet.autodiff.half.def_native``), which widen and narrow one sample at a
time inside the kernels instead of a conversion pass per array.  ``conv_output_size`` and
``conv2d_output_shape`` compute sizes without touching data.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from .. import kernels as K
from ..autodiff import NoBatchingRule, half, primitive
from ..kernels import conv_half as KH
from ._validate import check_float, check_same_dtype, contiguous, value
from .geometry import conv_shape, conv_window, is_int, output_sizes

__all__ = ["conv1d", "conv2d", "conv_output_size", "conv2d_output_shape"]


# ------------------------------------------------------------------------------- shape arithmetic


def conv_output_size(size: int, k: int, stride: int = 1, padding=0, dilation: int = 1) -> int:
    """Output length of a convolution (or pooling) along one axis, PyTorch's floor formula.

    ``out = floor((size + pad_before + pad_after - dilation*(k-1) - 1) / stride) + 1``

    Args:
        size: input length (>= 1).
        k: kernel length (>= 1).
        stride: step (>= 1).
        padding: an int (added on both sides), a pair ``(before, after)``, ``"valid"`` (0) or ``"same"``
            (``dilation*(k-1)`` in total, the odd pixel after; requires ``stride == 1``).
        dilation: spacing of the kernel taps (>= 1).

    Returns:
        The output length (>= 1).

    Raises:
        ValueError: non-positive sizes, or a kernel extent larger than the padded input.
    """
    op = "conv_output_size"
    for name, v in (("size", size), ("k", k), ("stride", stride), ("dilation", dilation)):
        if not is_int(v):
            raise TypeError(f"{op}: {name} expected an int, got {v!r}")
        if v < 1:
            raise ValueError(f"{op}: {name} must be >= 1, got {v}")
    one_axis = (tuple(padding),) if isinstance(padding, (tuple, list)) else padding
    return output_sizes(op, (size,), conv_window(op, (k,), stride, one_axis, dilation))[0]


def conv2d_output_shape(x_shape, weight_shape, *, stride=1, padding=0, dilation=1, groups=1) -> tuple:
    """The shape ``conv2d`` would return, computed without data (any of N, C, H, W may be None).

    Args:
        x_shape: ``(N, C, H, W)``.
        weight_shape: ``(out_ch, in_ch/groups, kh, kw)``.
        stride, padding, dilation, groups: as for :func:`conv2d`.

    Returns:
        ``(N, out_ch, out_h, out_w)``.

    Raises:
        TypeError, ValueError: as :func:`conv2d` for bad shapes or hyperparameters.
    """
    return conv_shape("conv2d_output_shape", 2, x_shape, weight_shape, stride, padding, dilation, groups)[0]


# ------------------------------------------------------------------------------- the primitive


class _Kernels(NamedTuple):
    """The three convolution kernels one storage dtype runs, taking and returning the ops' arrays."""

    fwd: Callable
    bwd_input: Callable
    bwd_weight: Callable


def _on_half_bits(kernel):
    """A :mod:`fnnet.kernels.conv_half` kernel called with float16 arrays (as their uint16 bits), returning
    float16 arrays."""

    def call(*args):
        out = kernel(*(contiguous(a).view(np.uint16) if type(a) is np.ndarray else a for a in args))
        return tuple(o.view(np.float16) for o in out) if type(out) is tuple else out.view(np.float16)

    return call


_SINGLE = _Kernels(K.conv2d_fwd, K.conv2d_bwd_input, K.conv2d_bwd_weight)
_HALF = _Kernels(*map(_on_half_bits, (KH.conv2d_fwd_half, KH.conv2d_bwd_input_half, KH.conv2d_bwd_weight_half)))


def _taps(w_shape, stride, pad_top, pad_left, dilation):
    """The kernels' geometry arguments ``(sh, sw, pad_top, pad_left, dh, dw, kh, kw)``."""
    return stride[0], stride[1], pad_top, pad_left, dilation[0], dilation[1], w_shape[2], w_shape[3]


def _forward(kernels, x, weight, bias, *, stride, pad_top, pad_left, dilation, out_hw, relu=False):
    x = contiguous(x)
    w = contiguous(weight)
    o, cg, kh, kw = w.shape
    groups = x.shape[1] // cg
    w3 = w.reshape(groups, o // groups, cg * kh * kw)
    has_bias = bias is not None
    b = contiguous(bias) if has_bias else np.zeros(0, x.dtype)
    y = kernels.fwd(x, w3, b, has_bias, relu, *_taps(w.shape, stride, pad_top, pad_left, dilation), *out_hw)
    return y, (x, w3, w.shape, has_bias, y if relu else None)


def _backward(kernels, res, g, *, needs, stride, pad_top, pad_left, dilation, out_hw, relu=False):
    x, w3, w_shape, has_bias, y = res
    g = contiguous(g)
    mask = y if relu else g  # the fused ReLU's backward runs inside the kernels, one sample at a time
    taps = _taps(w_shape, stride, pad_top, pad_left, dilation)
    # The input gradient is skipped when x is not traced (a network's first layer sees the data).
    gx = kernels.bwd_input(g, mask, relu, w3, x.shape[2], x.shape[3], *taps) if needs[0] else None
    gw, gb = kernels.bwd_weight(x, g, mask, relu, w3.shape[0], *taps, has_bias)
    return gx, gw.reshape(w_shape), (gb if has_bias else None)


def _conv2d_fwd(x, weight, bias, **params):
    return _forward(_SINGLE, x, weight, bias, **params)


def _conv2d_bwd(res, g, **params):
    return _backward(_SINGLE, res, g, **params)


def _conv2d_fwd_half(x, weight, bias, **params):
    """``_conv2d_fwd`` on float16 arrays with the half kernels (bitwise widen, float32 kernel, narrow); the
    residuals are the float16 arrays the widening path would store (``fnnet.autodiff.half.def_native``)."""
    return _forward(_HALF, x, weight, bias, **params)


def _conv2d_bwd_half(res, g, **params):
    """``_conv2d_bwd`` on float16 residuals and cotangent with the half kernels: float16 cotangents."""
    return _backward(_HALF, res, g, **params)


def _on_unit_height(fwd_2d, bwd_2d):
    """``conv1d``'s forward and backward: the 2-D ones on ``(N, C, 1, L)`` views."""

    def fwd(x, weight, bias, **params):
        y, res = fwd_2d(x[:, :, None], weight[:, :, None], bias, **params)
        return y[:, :, 0], res

    def bwd(res, g, **params):
        gx, gw, gb = bwd_2d(res, g[:, :, None], **params)
        return (None if gx is None else gx[:, :, 0]), gw[:, :, 0], gb

    return fwd, bwd


_conv2d = primitive("conv2d", _conv2d_fwd, _conv2d_bwd, argnames=("x", "weight", "bias"), input_mask=True)
_conv1d = primitive("conv1d", *_on_unit_height(_conv2d_fwd, _conv2d_bwd), argnames=("x", "weight", "bias"),
                    input_mask=True)
half.def_native(_conv2d, _conv2d_fwd_half, _conv2d_bwd_half)
half.def_native(_conv1d, *_on_unit_height(_conv2d_fwd_half, _conv2d_bwd_half))


def _checked_arrays(op, x, weight, bias):
    """The float, same-dtype ``(x, weight, bias)`` as the kernels will see them."""
    x = check_float(op, "x", x)
    weight = check_float(op, "weight", weight)
    if bias is not None:
        bias = check_float(op, "bias", bias)
    check_same_dtype(op, x=x, weight=weight, bias=bias)
    return x, weight, bias


def _check_bias_and_size(op, x, bias, out_ch):
    if bias is not None and value(bias).shape != (out_ch,):
        raise ValueError(f"{op}: bias must have shape ({out_ch},) (out_ch of the weight), got {value(bias).shape}")
    if min(value(x).shape) == 0:
        raise ValueError(f"{op}: x must not be empty, got shape {value(x).shape}")


def conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1, activation=None):
    """2-D cross-correlation over NCHW images, like ``torch.nn.functional.conv2d``.

    ``y[n, o, i, j] = bias[o] + sum_{c, a, b} weight[o, c, a, b] *
    xpad[n, g*C/groups + c, i*sh + a*dh, j*sw + b*dw]`` where ``g = o // (out_ch/groups)``.

    Args:
        x: ``(N, C, H, W)``, float32 or float64.
        weight: ``(out_ch, C/groups, kh, kw)``, the dtype of ``x``.
        bias: ``(out_ch,)`` or None.
        stride: int or ``(sh, sw)``, positive.
        padding: int or ``(ph, pw)`` zeros added on both sides (an entry may be a ``(before, after)`` pair);
            ``"valid"`` (no padding); or ``"same"`` (output size = input size; stride 1 only).  When the
            total ``dilation*(k-1)`` is odd, "same" puts the extra row/column at the bottom/right, as
            PyTorch and TensorFlow do.
        dilation: int or ``(dh, dw)``, positive.
        groups: positive int dividing both C and out_ch; ``groups == C`` is a depthwise convolution.
        activation: None or ``"relu"``, applied in the same kernel pass as the bias (forward and backward).

    Returns:
        ``(N, out_ch, out_h, out_w)`` with ``out_h = conv_output_size(H, kh, sh, padding, dh)``.

    Raises:
        TypeError: non-float or mismatched dtypes, or non-int hyperparameters.
        ValueError: wrong ranks, channel mismatch (shows x.shape, weight.shape and in_ch/groups), groups not
            dividing the channels, non-positive stride/dilation, negative padding, 'same' with stride > 1, or
            a kernel larger than the padded input.
    """
    op = "conv2d"
    x, weight, bias = _checked_arrays(op, x, weight, bias)
    out, window = conv_shape(op, 2, value(x).shape, value(weight).shape, stride, padding, dilation, groups)
    _check_bias_and_size(op, x, bias, out[1])
    if activation not in (None, "relu"):
        raise ValueError(f"{op}: activation must be None or 'relu', got {activation!r}")
    return _conv2d(x, weight, bias, stride=window.stride, pad_top=window.before[0], pad_left=window.before[1],
                   dilation=window.dilation, out_hw=out[2:], relu=activation == "relu")


def conv1d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
    """1-D cross-correlation over NCL arrays, like ``torch.nn.functional.conv1d``.

    ``y[n, o, i] = bias[o] + sum_{c, a} weight[o, c, a] * xpad[n, g*C/groups + c, i*s + a*d]`` where
    ``g = o // (out_ch/groups)``.

    Args:
        x: ``(N, C, L)``, float32 or float64.
        weight: ``(out_ch, C/groups, k)``, the dtype of ``x``.
        bias: ``(out_ch,)`` or None.
        stride, dilation: int (or a 1-tuple), positive.
        padding: int or ``(before, after)`` inside a 1-tuple (``((1, 2),)``), ``"valid"`` or ``"same"`` (stride
            1; an odd total ``dilation*(k-1)`` puts the extra pixel at the end, as PyTorch does).
        groups: positive int dividing both C and out_ch.

    Returns:
        ``(N, out_ch, out_l)`` with ``out_l = conv_output_size(L, k, stride, padding, dilation)``.

    Raises:
        TypeError, ValueError: as :func:`conv2d`, with shapes ``(N, C, L)`` and ``(out_ch, C/groups, k)``.
    """
    op = "conv1d"
    x, weight, bias = _checked_arrays(op, x, weight, bias)
    out, window = conv_shape(op, 1, value(x).shape, value(weight).shape, stride, padding, dilation, groups)
    _check_bias_and_size(op, x, bias, out[1])
    return _conv1d(x, weight, bias, stride=(1, window.stride[0]), pad_top=0, pad_left=window.before[0],
                   dilation=(1, window.dilation[0]), out_hw=(1, out[2]))


# ---------------------------------------------------------------------- fnnet.vmap batching rules
# One weight for every example: the examples' images go through the kernels as one batch; the weight and
# bias gradients are taken per example (one weight-gradient kernel call each) instead of summed.

def _conv2d_batch_fwd(values, batched, **params):
    x, weight, bias = values
    if batched[1] or batched[2]:
        raise NoBatchingRule("conv2d with a weight or bias per example has no batching rule")
    y, res = _conv2d_fwd(x.reshape(-1, *x.shape[2:]), weight, bias, **params)
    return y.reshape(x.shape[0], -1, *y.shape[1:]), res


def _conv2d_batch_vjp(res, g, batched, needs, *, stride, pad_top, pad_left, dilation, out_hw, relu=False):
    x, w3, w_shape, has_bias, y = res
    n = g.shape[0]
    g = contiguous(g).reshape(x.shape[0], *g.shape[2:])
    mask = y if relu else g
    taps = _taps(w_shape, stride, pad_top, pad_left, dilation)
    gx = K.conv2d_bwd_input(g, mask, relu, w3, x.shape[2], x.shape[3], *taps).reshape(n, -1, *x.shape[1:]) \
        if needs[0] else None
    per_example = [K.conv2d_bwd_weight(xi, gi, yi, relu, w3.shape[0], *taps, has_bias and needs[2])
                   for xi, gi, yi in zip(np.split(x, n), np.split(g, n), np.split(mask, n))] \
        if needs[1] or needs[2] else []
    gw = np.stack([gw.reshape(w_shape) for gw, _ in per_example]) if needs[1] else None
    gb = np.stack([gb for _, gb in per_example]) if has_bias and needs[2] else None
    return gx, gw, gb


def _conv1d_batch_fwd(values, batched, **params):
    x, weight, bias = values
    y, res = _conv2d_batch_fwd((x[:, :, :, None], weight[:, :, None], bias), batched, **params)
    return y[:, :, :, 0], res


def _conv1d_batch_vjp(res, g, batched, needs, **params):
    gx, gw, gb = _conv2d_batch_vjp(res, g[:, :, :, None], batched, needs, **params)
    return (None if gx is None else gx[:, :, :, 0]), (None if gw is None else gw[:, :, :, 0]), gb


_conv2d.defbatch(_conv2d_batch_fwd, _conv2d_batch_vjp)
_conv1d.defbatch(_conv1d_batch_fwd, _conv1d_batch_vjp)
