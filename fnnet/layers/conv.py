"""Convolution layers: ``Conv1D`` (NCL) and ``Conv2D`` (NCHW), PyTorch semantics and weight layout.

Both share the helpers below; sizes, padding and their checks come from :mod:`fnnet.ops.geometry`, the
rules the ops apply, so ``out_shape`` and ``apply`` agree and ``apply`` validates once (in the op).
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from .. import init as initializers
from .. import ops
from .. import random as fnrandom
from ..ops.geometry import conv_shape, conv_window
from ._window import ints_field, padding_field, padding_mode_field
from .base import Layer, TorchParam, as_shape, check_param, check_params, numel, positive_int, register

__all__ = ["Conv1D", "Conv2D"]


def _weight_shape(layer, in_channels):
    """The layer's weight shape (PyTorch's layout) for ``in_channels`` input channels (None: unknown)."""
    cg = None if in_channels is None else in_channels // layer.groups
    return (layer.out_channels, cg, *layer.kernel_size)


def _check_hyperparameters(layer):
    """Construction-time checks of a convolution layer (the ops' rules, so nothing fails later)."""
    name = type(layer).__name__
    if layer.out_channels % layer.groups:
        raise ValueError(f"{name}: out_channels={layer.out_channels} must be divisible by groups={layer.groups}")
    conv_window(name, layer.kernel_size, layer.stride, layer.padding, layer.dilation)


def _out_shape(layer, in_shape):
    name = type(layer).__name__
    shape = as_shape(in_shape, name)
    weight = _weight_shape(layer, shape[1] if len(shape) > 1 else None)
    return conv_shape(name, len(layer.kernel_size), shape, weight, layer.stride, layer.padding, layer.dilation,
                      layer.groups)[0]


def _init(layer, key, in_shape, dtype):
    name = type(layer).__name__
    shape = as_shape(in_shape, f"{name}.init")
    _out_shape(layer, shape)
    if shape[1] is None:
        raise ValueError(f"{name}.init: the channel axis of in_shape must be known, got {shape}")
    wkey, bkey = fnrandom.split(key)
    params = {"weight": layer.w_init(wkey, _weight_shape(layer, shape[1]), dtype)}
    if layer.use_bias:
        params["bias"] = layer.b_init(bkey, (layer.out_channels,), dtype)
    return params


def _apply(layer, conv, params, x, **options):
    """``conv`` (``ops.conv1d``/``ops.conv2d``) with the layer's hyperparameters; a ``padding_mode`` other
    than zeros pads with ``ops.pad`` first and convolves without padding, as PyTorch does."""
    name = type(layer).__name__
    check_params(name, params, ("weight", "bias") if layer.use_bias else ("weight",))
    weight = check_param(name, params, "weight", 2 + len(layer.kernel_size),
                         "(out_channels, in_channels // groups, *kernel_size)")
    bias = check_param(name, params, "bias", 1, "(out_channels,)") if layer.use_bias else None
    padding = layer.padding
    if layer.padding_mode != "zeros":
        window = conv_window(type(layer).__name__, layer.kernel_size, layer.stride, padding, layer.dilation)
        x, padding = ops.pad(x, window.padding, layer.padding_mode), 0
    return conv(x, weight, bias, stride=layer.stride, padding=padding,
                dilation=layer.dilation, groups=layer.groups, **options)


def _torch_layout(layer):
    weight = TorchParam("weight", shape=(layer.out_channels, "in_channels // groups", *layer.kernel_size))
    return (weight, TorchParam("bias", shape=(layer.out_channels,))) if layer.use_bias else (weight,)


def _flops(layer, in_shape):
    if in_shape[1] is None:
        return None
    n_out = numel(_out_shape(layer, in_shape))
    return n_out * 2 * (in_shape[1] // layer.groups) * math.prod(layer.kernel_size) + (n_out if layer.use_bias else 0)


class _Convolution(Layer):
    """What Conv1D and Conv2D share: checks, shapes, init, FLOPs, tape bytes and PyTorch layout, all read
    from the same hyperparameter fields through this module's geometry helpers."""

    compile_cost = 10  # several large kernels

    def __attrs_post_init__(self):
        _check_hyperparameters(self)

    def out_shape(self, in_shape):
        return _out_shape(self, in_shape)

    def init(self, key, in_shape, dtype=np.float32):
        return _init(self, key, in_shape, dtype)

    def flops(self, in_shape):
        return _flops(self, in_shape)

    def tape_bytes(self, in_shape, dtype):
        return numel(in_shape) * np.dtype(dtype).itemsize  # x, for the weight gradient

    def torch_layout(self):
        return _torch_layout(self)


@register
@attrs.frozen
class Conv2D(_Convolution):
    """2-D cross-correlation over NCHW images, PyTorch semantics.

    Args:
        out_channels: number of filters ``O``.
        kernel_size: ``k`` or ``(kh, kw)``.
        stride: ``s`` or ``(sh, sw)``.
        padding: ``p``, ``(ph, pw)`` (on both sides; an entry may be a ``(before, after)`` pair), ``"valid"``
            (none) or ``"same"`` (stride 1 only; output size = input size; an odd total puts the extra pixel
            at the bottom/right, as PyTorch does for even kernels).
        dilation: ``d`` or ``(dh, dw)``.
        groups: split the channels into ``groups`` independent convolutions (``groups == C``: depthwise).
        use_bias: add a learned bias.
        w_init: initializer of ``weight``, default He/Kaiming normal (for ReLU networks).
        b_init: initializer of ``bias``, default zeros.
        padding_mode: what the padding holds: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``
            (PyTorch's names; see :func:`fnnet.ops.pad`).

    Params: ``{"weight": (O, C // groups, kh, kw), "bias": (O,)}`` (PyTorch's layout).

    Shapes: ``x (N, C, H, W) -> y (N, O, H', W')`` with
    ``H' = floor((H + 2*ph - dh*(kh-1) - 1) / sh) + 1`` (same for W).
    """

    out_channels: int = attrs.field(validator=positive_int)
    kernel_size: tuple = ints_field(2)
    stride: tuple = ints_field(2, default=1)
    padding: object = padding_field(2)
    dilation: tuple = ints_field(2, default=1)
    groups: int = attrs.field(default=1, validator=positive_int)
    use_bias: bool = True
    w_init: initializers.Initializer = initializers.he_normal
    b_init: initializers.Initializer = initializers.zeros
    padding_mode: str = padding_mode_field()

    def forward(self, params, x, *, key=None, train=False):
        return self._conv(params, x, None)

    fusable_activations = frozenset({"relu"})
    #: The fused backward masks the cotangent one sample at a time inside the kernels, so inside a recomputed
    #: ``Remat`` block it holds less than Conv2D and ReLU as separate ops (no full-size masked cotangent).
    fuses_when_recomputing = True

    def apply_fused(self, params, x, activation):
        """``relu(apply(params, x))`` in one fused kernel (used by ``Sequential`` for Conv2D -> ReLU)."""
        return self._conv(params, x, activation)

    def _conv(self, params, x, activation):
        return _apply(self, ops.conv2d, params, x, activation=activation)


@register
@attrs.frozen
class Conv1D(_Convolution):
    """1-D cross-correlation over NCL sequences, PyTorch semantics (``torch.nn.Conv1d``).

    Args:
        out_channels: number of filters ``O``.
        kernel_size, stride, dilation: an int (or a 1-tuple).
        padding: ``p`` (both ends), ``((before, after),)``, ``"valid"`` or ``"same"`` (stride 1 only; an odd
            total puts the extra pixel at the end).
        groups, use_bias, w_init, b_init, padding_mode: as :class:`Conv2D`.

    Params: ``{"weight": (O, C // groups, k), "bias": (O,)}`` (PyTorch's layout).

    Shapes: ``x (N, C, L) -> y (N, O, L')`` with ``L' = floor((L + 2*p - d*(k-1) - 1) / s) + 1``.

    Example::

        layer = Conv1D(8, 3, padding="same", padding_mode="reflect")
        params = layer.init(fnnet.random.key(0), (None, 4, 50))
        y = layer.apply(params, np.ones((2, 4, 50), np.float32))       # (2, 8, 50)
    """

    out_channels: int = attrs.field(validator=positive_int)
    kernel_size: tuple = ints_field(1)
    stride: tuple = ints_field(1, default=1)
    padding: object = padding_field(1)
    dilation: tuple = ints_field(1, default=1)
    groups: int = attrs.field(default=1, validator=positive_int)
    use_bias: bool = True
    w_init: initializers.Initializer = initializers.he_normal
    b_init: initializers.Initializer = initializers.zeros
    padding_mode: str = padding_mode_field()

    def forward(self, params, x, *, key=None, train=False):
        return _apply(self, ops.conv1d, params, x)
