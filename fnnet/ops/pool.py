"""2-D pooling over NCHW images, PyTorch semantics: ``max_pool2d``, ``avg_pool2d``, ``global_avg_pool2d``.

Output sizes always round down (PyTorch's ``ceil_mode=False``; ceil mode is not supported), and padding
may be at most half the kernel, as in PyTorch, so every window holds at least one real pixel.
``pool2d_output_shape`` computes the output shape without data.
"""

from __future__ import annotations

import numpy as np

from .. import kernels as K
from ..autodiff import primitive
from ._validate import check_float, contiguous, value
from .conv import _pair

__all__ = ["max_pool2d", "avg_pool2d", "global_avg_pool2d", "pool2d_output_shape"]


def _pool_geometry(op, x_shape, kernel_size, stride, padding):
    """Validate; return (out_shape, (kh, kw), (sh, sw), (ph, pw))."""
    x_shape = tuple(x_shape)
    if len(x_shape) != 4:
        hint = "; add a batch axis with x[None]" if len(x_shape) == 3 else ""
        raise ValueError(f"{op}: x must have 4 dimensions (N, C, H, W), got shape {x_shape}{hint}")
    kh, kw = _pair(op, "kernel_size", kernel_size, minimum=1)
    sh, sw = (kh, kw) if stride is None else _pair(op, "stride", stride, minimum=1)
    ph, pw = _pair(op, "padding", padding, minimum=0)
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(
            f"{op}: padding should be at most half of the kernel size, got padding=({ph}, {pw}) for "
            f"kernel_size=({kh}, {kw}); use padding <= ({kh // 2}, {kw // 2})"
        )
    n, c, h, w = x_shape
    if (h is not None and h + 2 * ph < kh) or (w is not None and w + 2 * pw < kw):
        raise ValueError(
            f"{op}: the kernel ({kh}x{kw}) is larger than the padded input ({h}x{w} plus padding {ph} rows and "
            f"{pw} columns on each side); use a smaller kernel_size or more padding"
        )
    oh = None if h is None else (h + 2 * ph - kh) // sh + 1
    ow = None if w is None else (w + 2 * pw - kw) // sw + 1
    return (n, c, oh, ow), (kh, kw), (sh, sw), (ph, pw)


def pool2d_output_shape(x_shape, kernel_size, stride=None, padding=0) -> tuple:
    """The shape ``max_pool2d``/``avg_pool2d`` would return (any of N, C, H, W may be None).

    Args:
        x_shape: ``(N, C, H, W)``.  kernel_size, stride, padding: as for :func:`max_pool2d`.

    Returns:
        ``(N, C, floor((H + 2*ph - kh) / sh) + 1, floor((W + 2*pw - kw) / sw) + 1)``.

    Raises:
        the same TypeError/ValueError as the pooling ops.
    """
    return _pool_geometry("pool2d_output_shape", x_shape, kernel_size, stride, padding)[0]


def _checked_x(op, x):
    check_float(op, "x", x)
    if value(x).ndim == 4 and min(value(x).shape) == 0:
        raise ValueError(f"{op}: x must not be empty, got shape {value(x).shape}")
    return x


# ------------------------------------------------------------------------------------------ max


def _max_pool2d_fwd(x, *, kernel, stride, padding, out_hw):
    y, idx = K.max_pool2d_fwd(contiguous(x), *kernel, *stride, *padding, *out_hw)
    return y, (idx, x.shape[2], x.shape[3])


def _max_pool2d_bwd(res, g, **geometry):
    idx, h, w = res
    return (K.max_pool2d_bwd(contiguous(g), idx, h, w),)


_max_pool2d = primitive("max_pool2d", _max_pool2d_fwd, _max_pool2d_bwd, argnames=("x",))


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Maximum over sliding windows, like ``torch.nn.functional.max_pool2d`` (``ceil_mode=False``).

    Padding is -inf (never selected).  Where several pixels share a window's maximum, the gradient goes to
    the first of them in row-major window order (PyTorch's choice); NaN propagates.

    Args:
        x: ``(N, C, H, W)``, float32 or float64.
        kernel_size: int or ``(kh, kw)``, positive.
        stride: int, ``(sh, sw)``, or None (= kernel_size).
        padding: int or ``(ph, pw)``, at most half the kernel size.

    Returns:
        ``(N, C, floor((H + 2*ph - kh) / sh) + 1, floor((W + 2*pw - kw) / sw) + 1)``.

    Raises:
        TypeError: non-float x or non-int sizes.  ValueError: wrong rank, non-positive kernel/stride,
        negative padding or padding above half the kernel, kernel larger than the padded input.
    """
    op = "max_pool2d"
    _checked_x(op, x)
    out, kernel, st, pad = _pool_geometry(op, value(x).shape, kernel_size, stride, padding)
    if value(x).shape[2] * value(x).shape[3] >= 2**31:  # the argmax residual is int32
        raise ValueError(f"{op}: planes of 2**31 pixels or more are not supported, got shape {value(x).shape}")
    return _max_pool2d(x, kernel=kernel, stride=st, padding=pad, out_hw=out[2:])


# ------------------------------------------------------------------------------------------ average


def _avg_pool2d_fwd(x, *, kernel, stride, padding, out_hw, count_include_pad):
    y = K.avg_pool2d_fwd(contiguous(x), *kernel, *stride, *padding, *out_hw, count_include_pad)
    return y, (x.shape[2], x.shape[3])


def _avg_pool2d_bwd(res, g, *, kernel, stride, padding, out_hw, count_include_pad):
    h, w = res
    return (K.avg_pool2d_bwd(contiguous(g), h, w, *kernel, *stride, *padding, count_include_pad),)


_avg_pool2d = primitive("avg_pool2d", _avg_pool2d_fwd, _avg_pool2d_bwd, argnames=("x",))


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    """Mean over sliding windows, like ``torch.nn.functional.avg_pool2d`` (``ceil_mode=False``).

    With ``count_include_pad=True`` (PyTorch's default) the padded zeros count, so every window divides by
    ``kh*kw``; with False each window divides by the number of real pixels it covers.

    Args:
        x: ``(N, C, H, W)``, float32 or float64.
        kernel_size, stride, padding: as for :func:`max_pool2d`.
        count_include_pad: bool.

    Returns:
        ``(N, C, out_h, out_w)`` as for :func:`max_pool2d`.

    Raises:
        as :func:`max_pool2d`.
    """
    op = "avg_pool2d"
    _checked_x(op, x)
    if not isinstance(count_include_pad, (bool, np.bool_)):
        raise TypeError(f"{op}: count_include_pad expected a bool, got {count_include_pad!r}")
    out, kernel, st, pad = _pool_geometry(op, value(x).shape, kernel_size, stride, padding)
    return _avg_pool2d(x, kernel=kernel, stride=st, padding=pad, out_hw=out[2:],
                       count_include_pad=bool(count_include_pad))


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
        TypeError: non-float x.  ValueError: wrong rank or an empty x.
    """
    op = "global_avg_pool2d"
    _checked_x(op, x)
    if value(x).ndim != 4:
        raise ValueError(f"global_avg_pool2d: x must have 4 dimensions (N, C, H, W), got shape {value(x).shape}")
    return _global_avg_pool2d(x)
