"""``ConvTranspose2D``: the transposed ("fractionally strided") 2-D convolution, PyTorch semantics."""

from __future__ import annotations

import math

import attrs
import numpy as np

from .. import init as initializers
from .. import ops
from .. import random as fnrandom
from ..ops.geometry import conv_transpose_shape, transposed_window
from ._window import ints_field, padding_field
from .base import Layer, TorchParam, as_shape, check_param, check_params, numel, positive_int, register

__all__ = ["ConvTranspose2D"]


@register
@attrs.frozen
class ConvTranspose2D(Layer):
    """Transposed 2-D convolution over NCHW images (``torch.nn.ConvTranspose2d``): the adjoint of a
    ``Conv2D`` with the same hyperparameters, used to upsample (decoders, segmentation heads).

    Args (PyTorch's order):
        out_channels: number of output channels ``O``.
        kernel_size, stride, dilation: ``k`` or ``(kh, kw)``.
        padding: ``p``, ``(ph, pw)`` (an entry may be a ``(before, after)`` pair) or ``"valid"``: pixels
            cropped from each side of the full output.
        output_padding: ``(oph, opw)`` added at the end of each output axis, smaller than the stride or the
            dilation (it picks one of the sizes a strided ``Conv2D`` maps to the same output).
        groups: split the channels into ``groups`` independent transposed convolutions.
        use_bias, w_init (default He/Kaiming normal), b_init (default zeros).

    Params: ``{"weight": (C, O // groups, kh, kw), "bias": (O,)}`` (PyTorch's layout: input channels first).

    Shapes: ``x (N, C, H, W) -> y (N, O, H', W')`` with
    ``H' = (H - 1)*sh - 2*ph + dh*(kh - 1) + oph + 1`` (same for W).

    Example::

        up = ConvTranspose2D(16, 2, stride=2)                           # doubles H and W
        params = up.init(fnnet.random.key(0), (None, 32, 7, 7))
        y = up.apply(params, np.ones((4, 32, 7, 7), np.float32))       # (4, 16, 14, 14)

    Reference: Dumoulin and Visin, "A guide to convolution arithmetic for deep learning" (2016).
    """

    out_channels: int = attrs.field(validator=positive_int)
    kernel_size: tuple = ints_field(2)
    stride: tuple = ints_field(2, default=1)
    padding: object = padding_field(2)
    output_padding: tuple = ints_field(2, default=0, minimum=0)
    groups: int = attrs.field(default=1, validator=positive_int)
    use_bias: bool = True
    dilation: tuple = ints_field(2, default=1)
    w_init: initializers.Initializer = initializers.he_normal
    b_init: initializers.Initializer = initializers.zeros

    compile_cost = 10  # the convolution kernels

    def __attrs_post_init__(self):
        if self.out_channels % self.groups:
            raise ValueError(f"ConvTranspose2D: out_channels={self.out_channels} must be divisible by "
                             f"groups={self.groups}")
        transposed_window("ConvTranspose2D", self.kernel_size, self.stride, self.padding, self.dilation,
                          self.output_padding)

    def _weight_shape(self, in_channels):
        return (in_channels, self.out_channels // self.groups, *self.kernel_size)

    def out_shape(self, in_shape):
        shape = as_shape(in_shape, "ConvTranspose2D")
        weight = self._weight_shape(shape[1] if len(shape) > 1 else None)
        return conv_transpose_shape("ConvTranspose2D", 2, shape, weight, self.stride, self.padding,
                                    self.output_padding, self.dilation, self.groups)[0]

    def init(self, key, in_shape, dtype=np.float32):
        shape = as_shape(in_shape, "ConvTranspose2D.init")
        self.out_shape(shape)
        if shape[1] is None:
            raise ValueError(f"ConvTranspose2D.init: the channel axis of in_shape must be known, got {shape}")
        wkey, bkey = fnrandom.split(key)
        params = {"weight": self.w_init(wkey, self._weight_shape(shape[1]), dtype)}
        if self.use_bias:
            params["bias"] = self.b_init(bkey, (self.out_channels,), dtype)
        return params

    def forward(self, params, x, *, key=None, train=False):
        check_params("ConvTranspose2D", params, ("weight", "bias") if self.use_bias else ("weight",))
        weight = check_param("ConvTranspose2D", params, "weight", 4, "(in_channels, out_channels // groups, kh, kw)")
        bias = check_param("ConvTranspose2D", params, "bias", 1, "(out_channels,)") if self.use_bias else None
        return ops.conv_transpose2d(x, weight, bias, stride=self.stride,
                                    padding=self.padding, output_padding=self.output_padding,
                                    dilation=self.dilation, groups=self.groups)

    def flops(self, in_shape):
        if in_shape[1] is None:
            return None
        per_input = 2 * (self.out_channels // self.groups) * math.prod(self.kernel_size)  # each input pixel
        return numel(in_shape) * per_input + (numel(self.out_shape(in_shape)) if self.use_bias else 0)

    def tape_bytes(self, in_shape, dtype):
        return numel(in_shape) * np.dtype(dtype).itemsize  # x, for the weight gradient

    def torch_layout(self):
        weight = TorchParam("weight", shape=("in_channels", self.out_channels // self.groups, *self.kernel_size))
        return (weight, TorchParam("bias", shape=(self.out_channels,))) if self.use_bias else (weight,)
