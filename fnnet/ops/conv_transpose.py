"""``conv_transpose2d``: the transposed convolution (NCHW, PyTorch semantics and weight layout).

A transposed convolution is the adjoint of a convolution with respect to its input, so it runs the
convolution kernels of :mod:`fnnet.kernels.conv` with their roles swapped: its forward is
``conv2d_bwd_input`` (the input gradient of a convolution whose output is ``x``), its input gradient is
``conv2d_fwd`` and its weight gradient is ``conv2d_bwd_weight`` with ``x`` and the cotangent exchanged.
PyTorch's weight layout ``(in_ch, out_ch/groups, kh, kw)`` is exactly the convolution weight
``(out, in/groups, kh, kw)`` of that adjoint convolution, so no weight is transposed.
"""

from __future__ import annotations

import numpy as np

from .. import kernels as K
from ..autodiff import primitive
from ._validate import check_float, check_same_dtype, contiguous, value
from .geometry import conv_transpose_shape

__all__ = ["conv_transpose2d"]


def _conv_transpose2d_fwd(x, weight, bias, *, stride, pad_top, pad_left, dilation, groups, out_hw):
    x = contiguous(x)
    w = contiguous(weight)
    c, og, kh, kw = w.shape
    w3 = contiguous(w).reshape(groups, c // groups, og * kh * kw)
    y = K.conv2d_bwd_input(x, x, False, w3, out_hw[0], out_hw[1], stride[0], stride[1], pad_top, pad_left, dilation[0],
                           dilation[1], kh, kw)
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y, (x, w3, w.shape, bias is not None)


def _conv_transpose2d_bwd(res, g, *, needs, stride, pad_top, pad_left, dilation, groups, out_hw):
    x, w3, w_shape, has_bias = res
    g = contiguous(g)
    kh, kw = w_shape[2], w_shape[3]
    taps = (stride[0], stride[1], pad_top, pad_left, dilation[0], dilation[1], kh, kw)
    no_bias = np.zeros(0, g.dtype)
    gx = K.conv2d_fwd(g, w3, no_bias, False, False, *taps, x.shape[2], x.shape[3]) if needs[0] else None
    gw, _ = K.conv2d_bwd_weight(g, x, x, False, groups, *taps, False)
    gb = g.sum(axis=(0, 2, 3), dtype=np.float64).astype(g.dtype) if has_bias else None
    return gx, gw.reshape(w_shape), gb


_conv_transpose2d = primitive("conv_transpose2d", _conv_transpose2d_fwd, _conv_transpose2d_bwd,
                              argnames=("x", "weight", "bias"), input_mask=True)


def conv_transpose2d(x, weight, bias=None, *, stride=1, padding=0, output_padding=0, dilation=1, groups=1):
    """2-D transposed convolution over NCHW images, like ``torch.nn.functional.conv_transpose2d``.

    The adjoint of ``conv2d(., weight, stride=stride, padding=padding, dilation=dilation, groups=groups)``
    with respect to its input (plus ``bias``): each input pixel scatters ``weight``-weighted copies into
    the output, which grows by the stride.

    Args:
        x: ``(N, C, H, W)``, float32 or float64.
        weight: ``(C, out_ch/groups, kh, kw)`` (PyTorch's layout), the dtype of ``x``.
        bias: ``(out_ch,)`` or None.
        stride, dilation: int or ``(sh, sw)``/``(dh, dw)``, positive.
        padding: int or ``(ph, pw)`` (an entry may be a ``(before, after)`` pair), or ``"valid"`` (0): the
            pixels cropped from each side of the full transposed output, as in PyTorch.
        output_padding: int or pair added to the end of each output axis, smaller than the stride or the
            dilation (it picks one of the input sizes a strided ``conv2d`` maps to the same output size).
        groups: positive int dividing C and out_ch.

    Returns:
        ``(N, out_ch, out_h, out_w)`` with ``out_h = (H - 1)*sh - 2*ph + dh*(kh - 1) + output_padding + 1``.

    Raises:
        TypeError: non-float or mismatched dtypes, or non-int hyperparameters.
        ValueError: wrong ranks, ``x`` channels not matching ``weight.shape[0]``, groups not dividing the
            channels, bad stride/dilation/padding/output_padding, ``padding='same'``, or an empty output.
    """
    op = "conv_transpose2d"
    x = check_float(op, "x", x)
    weight = check_float(op, "weight", weight)
    if bias is not None:
        bias = check_float(op, "bias", bias)
    check_same_dtype(op, x=x, weight=weight, bias=bias)
    out, window = conv_transpose_shape(op, 2, value(x).shape, value(weight).shape, stride, padding,
                                       output_padding, dilation, groups)
    if bias is not None and value(bias).shape != (out[1],):
        raise ValueError(f"{op}: bias must have shape ({out[1]},) (weight.shape[1] * groups), got "
                         f"{value(bias).shape}")
    if min(value(x).shape) == 0:
        raise ValueError(f"{op}: x must not be empty, got shape {value(x).shape}")
    return _conv_transpose2d(x, weight, bias, stride=window.stride, pad_top=window.before[0],
                             pad_left=window.before[1], dilation=window.dilation, groups=groups, out_hw=out[2:])
