"""Pooling layers: ``MaxPool1D``, ``MaxPool2D``, ``AvgPool1D``, ``AvgPool2D`` and ``GlobalAvgPool2D``
(NCL/NCHW, PyTorch semantics).  Sizes, padding, dilation and ``ceil_mode`` follow
:mod:`fnnet.ops.geometry`, the rules the ops apply, so ``out_shape`` and ``apply`` agree."""

from __future__ import annotations

import math

import attrs

from .. import ops
from ..ops.geometry import check_rank, pool_shape, pool_window
from ._window import ints_field
from .base import Layer, as_shape, numel, register

__all__ = ["MaxPool1D", "MaxPool2D", "AvgPool1D", "AvgPool2D", "GlobalAvgPool2D"]


def _bool(instance, attribute, value):
    if not isinstance(value, bool):
        raise TypeError(f"{type(instance).__name__}: {attribute.name} expected a bool, got {value!r}")


@attrs.frozen
class _Pool(Layer):
    """What every windowed pooling layer shares; the subclasses below declare the fields."""

    compile_cost = 2
    #: average pooling has no dilation (the max-pooling layers make it a field)
    dilation = 1

    def __attrs_post_init__(self):
        pool_window(type(self).__name__, len(self.kernel_size), self.kernel_size, self.stride, self.padding,
                    self.dilation)

    def flops(self, in_shape):
        return numel(self.out_shape(in_shape)) * math.prod(self.kernel_size)

    def out_shape(self, in_shape):
        name = type(self).__name__
        return pool_shape(name, len(self.kernel_size), as_shape(in_shape, name), self.kernel_size, self.stride,
                          self.padding, self.dilation, self.ceil_mode)[0]


@attrs.frozen
class _Pool2D(_Pool):
    kernel_size: tuple = ints_field(2)
    stride: tuple | None = ints_field(2, default=None, optional=True)
    padding: tuple = ints_field(2, default=0, minimum=0)
    ceil_mode: bool = attrs.field(default=False, validator=_bool, kw_only=True)


@attrs.frozen
class _Pool1D(_Pool):
    kernel_size: tuple = ints_field(1)
    stride: tuple | None = ints_field(1, default=None, optional=True)
    padding: tuple = ints_field(1, default=0, minimum=0)
    ceil_mode: bool = attrs.field(default=False, validator=_bool, kw_only=True)


@register
@attrs.frozen
class MaxPool2D(_Pool2D):
    """Maximum over ``kernel_size`` windows (``stride`` defaults to ``kernel_size``; padding is -inf and at
    most half the kernel; ``dilation`` spaces a window's taps).  Output sizes round down, or up with
    ``ceil_mode=True`` (keyword only; a last window must start inside the input or the left padding).
    Where several inputs share a window's maximum, the gradient goes to the first of them in row-major
    window order, as in PyTorch.

    Shapes: ``(N, C, H, W) -> (N, C, H', W')``, ``H' = floor((H + 2*ph - dh*(kh-1) - 1) / sh) + 1``.
    """

    dilation: tuple = ints_field(2, default=1)

    def forward(self, params, x, *, key=None, train=False):
        return ops.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def tape_bytes(self, in_shape, dtype):
        return numel(self.out_shape(in_shape)) * 8  # the int64 position of each window's maximum


@register
@attrs.frozen
class AvgPool2D(_Pool2D):
    """Mean over ``kernel_size`` windows.  With ``count_include_pad=True`` (PyTorch's default) padded zeros
    count in the divisor; with False only real pixels do.  ``ceil_mode`` (keyword only) as :class:`MaxPool2D`.

    Shapes: as :class:`MaxPool2D` (without dilation).
    """

    count_include_pad: bool = True

    def forward(self, params, x, *, key=None, train=False):
        return ops.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.count_include_pad,
                              ceil_mode=self.ceil_mode)

    def tape_bytes(self, in_shape, dtype):
        return 0  # the VJP spreads the cotangent evenly; it needs no activation


@register
@attrs.frozen
class GlobalAvgPool2D(Layer):
    """Mean over the spatial axes: ``(N, C, H, W) -> (N, C)``."""

    def out_shape(self, in_shape):
        shape = as_shape(in_shape, "GlobalAvgPool2D")
        check_rank("GlobalAvgPool2D", shape, 2)
        return shape[:2]

    def forward(self, params, x, *, key=None, train=False):
        return ops.global_avg_pool2d(x)

    def flops(self, in_shape):
        return numel(in_shape)

    def tape_bytes(self, in_shape, dtype):
        return 0


@register
@attrs.frozen
class MaxPool1D(_Pool1D):
    """Maximum over windows of NCL sequences (``torch.nn.MaxPool1d``): as :class:`MaxPool2D` with one
    spatial axis.

    Shapes: ``(N, C, L) -> (N, C, L')``, ``L' = floor((L + 2*p - d*(k-1) - 1) / s) + 1``.
    """

    dilation: tuple = ints_field(1, default=1)

    def forward(self, params, x, *, key=None, train=False):
        return ops.max_pool1d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def tape_bytes(self, in_shape, dtype):
        return numel(self.out_shape(in_shape)) * 4  # the int32 position of each window's maximum


@register
@attrs.frozen
class AvgPool1D(_Pool1D):
    """Mean over windows of NCL sequences (``torch.nn.AvgPool1d``): as :class:`AvgPool2D` with one spatial
    axis.

    Shapes: ``(N, C, L) -> (N, C, L')``, ``L' = floor((L + 2*p - k) / s) + 1``.
    """

    count_include_pad: bool = True

    def forward(self, params, x, *, key=None, train=False):
        return ops.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.count_include_pad,
                              ceil_mode=self.ceil_mode)

    def tape_bytes(self, in_shape, dtype):
        return 0  # the VJP spreads the cotangent evenly; it needs no activation
