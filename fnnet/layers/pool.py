"""Pooling layers: ``MaxPool2D``, ``AvgPool2D`` and ``GlobalAvgPool2D`` (NCHW, PyTorch semantics)."""

from __future__ import annotations

import attrs

from .. import ops
from .base import Layer, as_shape, register
from .conv import _positive_pair, _spatial_out, pair

__all__ = ["MaxPool2D", "AvgPool2D", "GlobalAvgPool2D"]


def _optional_pair(value):
    return None if value is None else pair(value)


def _check_stride(instance, attribute, value):
    if value is not None:
        _positive_pair(instance, attribute, value)


def _check_pool_padding(instance, attribute, value):
    if not (isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) and v >= 0 for v in value)):
        raise ValueError(f"{type(instance).__name__}: padding must be a non-negative int or pair, got {value!r}")
    if any(2 * p > k for p, k in zip(value, instance.kernel_size)):
        raise ValueError(
            f"{type(instance).__name__}: padding {value} must be at most half the kernel size {instance.kernel_size}"
        )


@attrs.frozen
class _Pool2D(Layer):
    kernel_size: tuple = attrs.field(converter=pair, validator=_positive_pair)
    stride: tuple | None = attrs.field(default=None, converter=_optional_pair, validator=_check_stride)
    padding: tuple = attrs.field(default=0, converter=pair, validator=_check_pool_padding)

    @property
    def strides(self):
        return self.stride if self.stride is not None else self.kernel_size

    def out_shape(self, in_shape):
        name = type(self).__name__
        shape = as_shape(in_shape, name)
        if len(shape) != 4:
            raise ValueError(f"{name}: expected NCHW input (4 axes), got shape {shape}")
        n, c, h, w = shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.strides, self.padding
        return (n, c, _spatial_out(f"{name} (height)", h, kh, sh, 2 * ph, 1),
                _spatial_out(f"{name} (width)", w, kw, sw, 2 * pw, 1))


@register
@attrs.frozen
class MaxPool2D(_Pool2D):
    """Maximum over ``kernel_size`` windows (``stride`` defaults to ``kernel_size``; padding is -inf and at
    most half the kernel).  Output sizes round down (no ``ceil_mode``).  Where several inputs share a
    window's maximum, the gradient goes to the first of them in row-major window order, as in PyTorch.

    Shapes: ``(N, C, H, W) -> (N, C, H', W')``, ``H' = floor((H + 2*ph - kh) / sh) + 1``.
    """

    def forward(self, params, x, *, key=None, train=False):
        self.out_shape(tuple(x.shape))
        return ops.max_pool2d(x, self.kernel_size, self.strides, self.padding)


@register
@attrs.frozen
class AvgPool2D(_Pool2D):
    """Mean over ``kernel_size`` windows.  With ``count_include_pad=True`` (PyTorch's default) padded zeros
    count in the divisor; with False only real pixels do.

    Shapes: as :class:`MaxPool2D`.
    """

    count_include_pad: bool = True

    def forward(self, params, x, *, key=None, train=False):
        self.out_shape(tuple(x.shape))
        return ops.avg_pool2d(x, self.kernel_size, self.strides, self.padding, count_include_pad=self.count_include_pad)


@register
@attrs.frozen
class GlobalAvgPool2D(Layer):
    """Mean over the spatial axes: ``(N, C, H, W) -> (N, C)``."""

    def out_shape(self, in_shape):
        shape = as_shape(in_shape, "GlobalAvgPool2D")
        if len(shape) != 4:
            raise ValueError(f"GlobalAvgPool2D: expected NCHW input (4 axes), got shape {shape}")
        return shape[:2]

    def forward(self, params, x, *, key=None, train=False):
        self.out_shape(tuple(x.shape))
        return ops.global_avg_pool2d(x)
