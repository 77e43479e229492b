"""Activation layers: parameter-free wrappers over the ops of the same names."""

from __future__ import annotations

import attrs
import numpy as np

from .. import ops
from .base import Layer, numel, register

__all__ = ["ReLU", "LeakyReLU", "ELU", "GELU", "Sigmoid", "Tanh", "Softplus", "Softmax", "LogSoftmax"]


@attrs.frozen
class _Elementwise(Layer):
    """Estimates shared by activations: ``flops_per_element`` per element, and a VJP that reads one array
    the size of ``x`` (its input or its output)."""

    flops_per_element = 1

    def flops(self, in_shape):
        return self.flops_per_element * numel(in_shape)

    def tape_bytes(self, in_shape, dtype):
        return numel(in_shape) * np.dtype(dtype).itemsize


@register
@attrs.frozen
class ReLU(_Elementwise):
    """``max(x, 0)`` elementwise; any shape."""

    fused_activation = "relu"  # a preceding Linear or Conv2D applies it inside its own kernel

    def forward(self, params, x, *, key=None, train=False):
        return ops.relu(x)


@register
@attrs.frozen
class LeakyReLU(_Elementwise):
    """``x`` if ``x > 0`` else ``negative_slope * x``; any shape."""

    negative_slope: float = 0.01

    def forward(self, params, x, *, key=None, train=False):
        return ops.leaky_relu(x, self.negative_slope)


@register
@attrs.frozen
class ELU(_Elementwise):
    """``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``; any shape."""

    alpha: float = 1.0

    def forward(self, params, x, *, key=None, train=False):
        return ops.elu(x, self.alpha)


@register
@attrs.frozen
class GELU(_Elementwise):
    """``x * Phi(x)``, ``Phi`` the standard normal CDF; any shape.

    Args:
        approximate: ``"none"`` (or False) for the exact erf form, ``"tanh"`` (or True) for the tanh formula,
            as ``torch.nn.GELU(approximate=...)``.
    """

    approximate: object = attrs.field(default=False)

    @approximate.validator
    def _check_approximate(self, attribute, value):
        if not (value is False or value is True or value in ("none", "tanh")):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh' (or False/True), got {value!r}")

    def forward(self, params, x, *, key=None, train=False):
        return ops.gelu(x, self.approximate)


@register
@attrs.frozen
class Sigmoid(_Elementwise):
    """``1 / (1 + exp(-x))``; any shape."""

    def forward(self, params, x, *, key=None, train=False):
        return ops.sigmoid(x)


@register
@attrs.frozen
class Tanh(_Elementwise):
    """Hyperbolic tangent; any shape."""

    def forward(self, params, x, *, key=None, train=False):
        return ops.tanh(x)


@register
@attrs.frozen
class Softplus(_Elementwise):
    """``log(1 + exp(x))``; any shape."""

    def forward(self, params, x, *, key=None, train=False):
        return ops.softplus(x)


@register
@attrs.frozen
class Softmax(_Elementwise):
    """``exp(x) / sum(exp(x))`` along ``axis`` (stable); any shape."""

    axis: int = -1
    flops_per_element = 5  # max, subtract, exp, sum, divide

    def forward(self, params, x, *, key=None, train=False):
        return ops.softmax(x, axis=self.axis)


@register
@attrs.frozen
class LogSoftmax(_Elementwise):
    """``x - logsumexp(x)`` along ``axis``; any shape."""

    axis: int = -1
    flops_per_element = 5  # max, subtract, exp, sum, divide

    def forward(self, params, x, *, key=None, train=False):
        return ops.log_softmax(x, axis=self.axis)
