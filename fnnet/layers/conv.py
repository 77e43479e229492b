"""``Conv2D``: 2-D convolution on NCHW images."""

from __future__ import annotations

import numbers

import attrs
import numpy as np

from .. import init as initializers
from .. import ops
from .. import random as fnrandom
from .base import Layer, as_shape, check_params, positive_int, register

__all__ = ["Conv2D", "pair"]


def pair(value):
    """An int or a pair of ints as a ``(h, w)`` tuple (lists from configs included)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return tuple(value)
    return value


def _positive_pair(instance, attribute, value):
    if not (isinstance(value, tuple) and len(value) == 2 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ValueError(f"{type(instance).__name__}: {attribute.name} must be a positive int or a pair of them, got {value!r}")


def _padding(value):
    return value if isinstance(value, str) else pair(value)


def _check_padding(instance, attribute, value):
    if isinstance(value, str):
        if value not in ("same", "valid"):
            raise ValueError(f"{type(instance).__name__}: padding must be an int, a pair, 'same' or 'valid', got {value!r}")
        if value == "same" and getattr(instance, "stride", (1, 1)) != (1, 1):
            raise ValueError(f"{type(instance).__name__}: padding='same' needs stride=1, got stride={instance.stride}")
        return
    if not (isinstance(value, tuple) and len(value) == 2 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0 for v in value)):
        raise ValueError(f"{type(instance).__name__}: padding must be a non-negative int or pair, got {value!r}")


def _spatial_out(where, size, k, stride, pad_total, dilation):
    """Output length of one spatial axis; raises when the (dilated) kernel exceeds the padded input."""
    if size is None:
        return None
    span = dilation * (k - 1) + 1
    if size + pad_total < span:
        raise ValueError(
            f"{where}: the kernel spans {span} pixels (kernel {k}, dilation {dilation}) but the padded input has "
            f"only {size + pad_total} ({size} + padding {pad_total}); use a smaller kernel or more padding"
        )
    return (size + pad_total - span) // stride + 1


@register
@attrs.frozen
class Conv2D(Layer):
    """2-D cross-correlation over NCHW images, PyTorch semantics.

    Args:
        out_channels: number of filters ``O``.
        kernel_size: ``k`` or ``(kh, kw)``.
        stride: ``s`` or ``(sh, sw)``.
        padding: ``p``, ``(ph, pw)`` (zeros on both sides), ``"valid"`` (none) or ``"same"`` (stride 1 only;
            output size = input size; an odd total puts the extra pixel at the bottom/right).
        dilation: ``d`` or ``(dh, dw)``.
        groups: split the channels into ``groups`` independent convolutions (``groups == C``: depthwise).
        use_bias, w_init (default He/Kaiming normal, for ReLU networks), b_init (default zeros).

    Params: ``{"weight": (O, C // groups, kh, kw), "bias": (O,)}`` (PyTorch's layout).

    Shapes: ``x (N, C, H, W) -> y (N, O, H', W')`` with
    ``H' = floor((H + 2*ph - dh*(kh-1) - 1) / sh) + 1`` (same for W).
    """

    out_channels: int = attrs.field(validator=positive_int)
    kernel_size: tuple = attrs.field(converter=pair, validator=_positive_pair)
    stride: tuple = attrs.field(default=1, converter=pair, validator=_positive_pair)
    padding: object = attrs.field(default=0, converter=_padding, validator=_check_padding)
    dilation: tuple = attrs.field(default=1, converter=pair, validator=_positive_pair)
    groups: int = attrs.field(default=1, validator=positive_int)
    use_bias: bool = True
    w_init: initializers.Initializer = initializers.he_normal
    b_init: initializers.Initializer = initializers.zeros

    def __attrs_post_init__(self):
        if self.out_channels % self.groups:
            raise ValueError(f"Conv2D: out_channels={self.out_channels} must be divisible by groups={self.groups}")

    def _pads(self):
        if self.padding == "valid":
            return (0, 0), (0, 0)
        if self.padding == "same":
            totals = [d * (k - 1) for k, d in zip(self.kernel_size, self.dilation)]
            return tuple(totals), tuple(totals)
        return tuple(2 * p for p in self.padding), tuple(2 * p for p in self.padding)

    def out_shape(self, in_shape):
        shape = as_shape(in_shape, "Conv2D")
        if len(shape) != 4:
            raise ValueError(f"Conv2D: expected NCHW input (4 axes), got shape {shape}")
        n, c, h, w = shape
        if c is not None and c % self.groups:
            raise ValueError(f"Conv2D: input channels {c} must be divisible by groups={self.groups}")
        totals, _ = self._pads()
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        return (n, self.out_channels, _spatial_out("Conv2D (height)", h, kh, sh, totals[0], dh),
                _spatial_out("Conv2D (width)", w, kw, sw, totals[1], dw))

    def init(self, key, in_shape, dtype=np.float32):
        shape = as_shape(in_shape, "Conv2D.init")
        self.out_shape(shape)
        if shape[1] is None:
            raise ValueError(f"Conv2D.init: the channel axis of in_shape must be known, got {shape}")
        wkey, bkey = fnrandom.split(key)
        params = {"weight": self.w_init(wkey, (self.out_channels, shape[1] // self.groups, *self.kernel_size), dtype)}
        if self.use_bias:
            params["bias"] = self.b_init(bkey, (self.out_channels,), dtype)
        return params

    def forward(self, params, x, *, key=None, train=False):
        return self._conv(params, x, None)

    def apply_relu(self, params, x):
        """``relu(apply(params, x))`` in one fused kernel (used by ``Sequential`` for Conv2D -> ReLU)."""
        return self._conv(params, x, "relu")

    def _conv(self, params, x, activation):
        check_params("Conv2D", params, ("weight", "bias") if self.use_bias else ("weight",))
        self.out_shape(tuple(x.shape))
        return ops.conv2d(x, params["weight"], params.get("bias"), stride=self.stride, padding=self.padding,
                          dilation=self.dilation, groups=self.groups, activation=activation)
