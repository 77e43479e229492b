"""Pooling over NCL and NCHW arrays, PyTorch semantics: ``max_pool1d``, ``max_pool2d``, ``avg_pool1d``,
``avg_pool2d``, ``global_avg_pool2d``.

Output sizes, padding (at most half the kernel, as in PyTorch, so every window holds a real pixel),
dilation and ``ceil_mode`` follow :mod:`fnnet.ops.geometry`, the one source of these rules.  The 1-D pools
run the 2-D kernels on a unit-height view.  ``pool2d_output_shape`` computes the output shape without data.
"""

from __future__ import annotations

import numpy as np

from .. import kernels as K
from ..kernels import pool_half as KP
from ..autodiff import half, primitive
from ..autodiff.batching import sample_batching
from ._validate import check_float, contiguous, value
from .geometry import pool_shape

__all__ = ["max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "global_avg_pool2d", "pool2d_output_shape"]


def pool2d_output_shape(x_shape, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False) -> tuple:
    """The shape ``max_pool2d``/``avg_pool2d`` would return (any of N, C, H, W may be None).

    Args:
        x_shape: ``(N, C, H, W)``.
        kernel_size, stride, padding, dilation, ceil_mode: as for :func:`max_pool2d`.

    Returns:
        ``(N, C, out_h, out_w)``, ``out_h = floor((H + 2*ph - dh*(kh-1) - 1) / sh) + 1`` (see ``ceil_mode``).

    Raises:
        TypeError, ValueError: as the pooling ops.
    """
    return pool_shape("pool2d_output_shape", 2, x_shape, kernel_size, stride, padding, dilation, ceil_mode)[0]


def _checked_x(op, x):
    x = check_float(op, "x", x)
    if min(value(x).shape, default=1) == 0:
        raise ValueError(f"{op}: x must not be empty, got shape {value(x).shape}")
    return x


def _check_bool(op, name, v):
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} expected a bool, got {v!r}")
    return bool(v)


def _on_unit_height(fwd_2d, bwd_2d):
    """A 2-D pooling forward and VJP as 1-D ones: the same functions on an ``(N, C, 1, L)`` view."""

    def fwd(x, **params):
        y, res = fwd_2d(x[:, :, None], **params)
        return y[:, :, 0], res

    def bwd(res, g, **params):
        (gx,) = bwd_2d(res, g[:, :, None], **params)
        return (gx[:, :, 0],)

    return fwd, bwd


def _unit_height(primitive_2d, name):
    """The 1-D version of a 2-D pooling primitive: the same kernels on an ``(N, C, 1, L)`` view."""
    return primitive(name, *_on_unit_height(primitive_2d.fwd, primitive_2d.bwd), argnames=("x",))


def _kernel_params(ndim, out, window):
    """The 2-D kernels' parameters for a 1-D or 2-D window (a 1-D one gets a unit height)."""
    if ndim == 1:
        window = window._replace(kernel=(1, *window.kernel), stride=(1, *window.stride),
                                 dilation=(1, *window.dilation), padding=((0, 0), *window.padding))
        out = (*out[:2], 1, out[2])
    return dict(kernel=window.kernel, stride=window.stride, padding=window.before, dilation=window.dilation,
                out_hw=out[2:])


# ------------------------------------------------------------------------------------------ max


def _max_pool2d_fwd(x, *, kernel, stride, padding, dilation, out_hw):
    y, idx = K.max_pool2d_fwd(contiguous(x), *kernel, *stride, *padding, *dilation, *out_hw)
    return y, (idx, x.shape[2], x.shape[3])


def _max_pool2d_bwd(res, g, **geometry):
    idx, h, w = res
    return (K.max_pool2d_bwd(contiguous(g), idx, h, w),)


def _max_pool2d_fwd_half(x, *, kernel, stride, padding, dilation, out_hw):
    """``_max_pool2d_fwd`` on float16 ``x`` in one kernel (bitwise widen, float32 kernel, narrow), saving the
    residuals the widening path would store (``fnnet.autodiff.half.def_native``)."""
    bits = contiguous(x).view(np.uint16)
    y, idx = KP.max_pool2d_fwd_half(bits, *kernel, *stride, *padding, *dilation, *out_hw)
    return y.view(np.float16), (idx, x.shape[2], x.shape[3])


def _max_pool2d_bwd_half(res, g, **geometry):
    idx, h, w = res
    return (KP.max_pool2d_bwd_half(contiguous(g).view(np.uint16), idx, h, w).view(np.float16),)


_max_pool2d = primitive("max_pool2d", _max_pool2d_fwd, _max_pool2d_bwd, argnames=("x",))
_max_pool1d = _unit_height(_max_pool2d, "max_pool1d")
half.def_native(_max_pool2d, _max_pool2d_fwd_half, _max_pool2d_bwd_half)
half.def_native(_max_pool1d, *_on_unit_height(_max_pool2d_fwd_half, _max_pool2d_bwd_half))


def _max_pool(op, ndim, x, kernel_size, stride, padding, dilation, ceil_mode):
    x = _checked_x(op, x)
    out, window = pool_shape(op, ndim, value(x).shape, kernel_size, stride, padding, dilation, ceil_mode)
    if np.prod(value(x).shape[2:]) >= 2**31:  # the argmax residual is int32
        raise ValueError(f"{op}: planes of 2**31 pixels or more are not supported, got shape {value(x).shape}")
    return (_max_pool2d if ndim == 2 else _max_pool1d)(x, **_kernel_params(ndim, out, window))


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Maximum over sliding windows, like ``torch.nn.functional.max_pool2d``.

    Padding is -inf (never selected).  Where several pixels share a window's maximum, the gradient goes to
    the first of them in row-major window order (PyTorch's choice); NaN propagates.

    Args:
        x: ``(N, C, H, W)``, float32 or float64.
        kernel_size: int or ``(kh, kw)``, positive.
        stride: int, ``(sh, sw)``, or None (= kernel_size).
        padding: int or ``(ph, pw)``, at most half the kernel size.
        dilation: int or ``(dh, dw)``, the spacing of a window's taps.
        ceil_mode: round the output size up instead of down (a last, partial window is added unless it
            would start in the right padding).

    Returns:
        ``(N, C, out_h, out_w)``, ``out_h = floor((H + 2*ph - dh*(kh-1) - 1) / sh) + 1`` (rounded up with
        ``ceil_mode``).

    Raises:
        TypeError: non-float x or non-int sizes.
        ValueError: wrong rank, non-positive kernel/stride/dilation, negative padding or padding above half
            the kernel, a window larger than the padded input.
    """
    return _max_pool("max_pool2d", 2, x, kernel_size, stride, padding, dilation, ceil_mode)


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Maximum over sliding windows of ``x (N, C, L)``, like ``torch.nn.functional.max_pool1d``.

    Args, Returns, Raises: as :func:`max_pool2d` with one spatial axis (ints or 1-tuples); returns
    ``(N, C, out_l)``.
    """
    return _max_pool("max_pool1d", 1, x, kernel_size, stride, padding, dilation, ceil_mode)


# ------------------------------------------------------------------------------------------ average


def _avg_pool2d_fwd(x, *, kernel, stride, padding, out_hw, count_include_pad):
    y = K.avg_pool2d_fwd(contiguous(x), *kernel, *stride, *padding, *out_hw, count_include_pad)
    return y, (x.shape[2], x.shape[3])


def _avg_pool2d_bwd(res, g, *, kernel, stride, padding, out_hw, count_include_pad):
    h, w = res
    return (K.avg_pool2d_bwd(contiguous(g), h, w, *kernel, *stride, *padding, count_include_pad),)


_avg_pool2d = primitive("avg_pool2d", _avg_pool2d_fwd, _avg_pool2d_bwd, argnames=("x",))
_avg_pool1d = _unit_height(_avg_pool2d, "avg_pool1d")


def _avg_pool(op, ndim, x, kernel_size, stride, padding, count_include_pad, ceil_mode):
    x = _checked_x(op, x)
    include = _check_bool(op, "count_include_pad", count_include_pad)
    out, window = pool_shape(op, ndim, value(x).shape, kernel_size, stride, padding, 1, ceil_mode)
    params = _kernel_params(ndim, out, window)
    del params["dilation"]  # always 1: average pooling has no dilation in PyTorch
    return (_avg_pool2d if ndim == 2 else _avg_pool1d)(x, count_include_pad=include, **params)


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True, *, ceil_mode=False):
    """Mean over sliding windows, like ``torch.nn.functional.avg_pool2d``.

    With ``count_include_pad=True`` (PyTorch's default) the padded zeros count, so a window divides by
    ``kh*kw`` (by its part inside the padded input when ``ceil_mode`` lets it reach past the padding); with
    False each window divides by the number of real pixels it covers.

    Args:
        x: ``(N, C, H, W)``, float32 or float64.
        kernel_size, stride, padding, ceil_mode: as for :func:`max_pool2d`.
        count_include_pad: bool.

    Returns:
        ``(N, C, out_h, out_w)`` as for :func:`max_pool2d`.

    Raises:
        TypeError, ValueError: as :func:`max_pool2d`.
    """
    return _avg_pool("avg_pool2d", 2, x, kernel_size, stride, padding, count_include_pad, ceil_mode)


def avg_pool1d(x, kernel_size, stride=None, padding=0, count_include_pad=True, *, ceil_mode=False):
    """Mean over sliding windows of ``x (N, C, L)``, like ``torch.nn.functional.avg_pool1d``.

    Args, Returns, Raises: as :func:`avg_pool2d` with one spatial axis; returns ``(N, C, out_l)``.
    """
    return _avg_pool("avg_pool1d", 1, x, kernel_size, stride, padding, count_include_pad, ceil_mode)


# ------------------------------------------------------------------------------------------ global


def _global_avg_pool2d_fwd(x):
    return K.global_avg_pool2d_fwd(contiguous(x)), (x.shape[2], x.shape[3])


def _global_avg_pool2d_bwd(res, g):
    h, w = res
    return (K.global_avg_pool2d_bwd(contiguous(g), h, w),)


_global_avg_pool2d = primitive("global_avg_pool2d", _global_avg_pool2d_fwd, _global_avg_pool2d_bwd, argnames=("x",))


def global_avg_pool2d(x):
    """Mean over the spatial axes.

    Args:
        x: ``(N, C, H, W)``, float32 or float64.

    Returns:
        ``(N, C)``.

    Raises:
        TypeError: non-float x.
        ValueError: wrong rank or an empty x.
    """
    op = "global_avg_pool2d"
    x = check_float(op, "x", x)
    if value(x).ndim != 4:
        raise ValueError(f"global_avg_pool2d: x must have 4 dimensions (N, C, H, W), got shape {value(x).shape}")
    return _global_avg_pool2d(_checked_x(op, x))


# fnnet.vmap: every example's images pooled as one batch
for _prim in (_max_pool2d, _max_pool1d, _avg_pool2d, _avg_pool1d, _global_avg_pool2d):
    sample_batching(_prim)
