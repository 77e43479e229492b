"""Activation layers: parameter-free wrappers over the ops of the same names."""

from __future__ import annotations

import attrs

from .. import ops
from .base import Layer, register

__all__ = ["ReLU", "LeakyReLU", "ELU", "GELU", "Sigmoid", "Tanh", "Softplus", "Softmax", "LogSoftmax"]


@register
@attrs.frozen
class ReLU(Layer):
    """``max(x, 0)`` elementwise; any shape."""

    def forward(self, params, x, *, key=None, train=False):
        return ops.relu(x)


@register
@attrs.frozen
class LeakyReLU(Layer):
    """``x`` if ``x > 0`` else ``negative_slope * x``; any shape."""

    negative_slope: float = 0.01

    def forward(self, params, x, *, key=None, train=False):
        return ops.leaky_relu(x, self.negative_slope)


@register
@attrs.frozen
class ELU(Layer):
    """``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``; any shape."""

    alpha: float = 1.0

    def forward(self, params, x, *, key=None, train=False):
        return ops.elu(x, self.alpha)


@register
@attrs.frozen
class GELU(Layer):
    """``x * Phi(x)`` (``approximate=True``: the tanh formula); any shape."""

    approximate: bool = False

    def forward(self, params, x, *, key=None, train=False):
        return ops.gelu(x, self.approximate)


@register
@attrs.frozen
class Sigmoid(Layer):
    """``1 / (1 + exp(-x))``; any shape."""

    def forward(self, params, x, *, key=None, train=False):
        return ops.sigmoid(x)


@register
@attrs.frozen
class Tanh(Layer):
    """Hyperbolic tangent; any shape."""

    def forward(self, params, x, *, key=None, train=False):
        return ops.tanh(x)


@register
@attrs.frozen
class Softplus(Layer):
    """``log(1 + exp(x))``; any shape."""

    def forward(self, params, x, *, key=None, train=False):
        return ops.softplus(x)


@register
@attrs.frozen
class Softmax(Layer):
    """``exp(x) / sum(exp(x))`` along ``axis`` (stable); any shape."""

    axis: int = -1

    def forward(self, params, x, *, key=None, train=False):
        return ops.softmax(x, axis=self.axis)


@register
@attrs.frozen
class LogSoftmax(Layer):
    """``x - logsumexp(x)`` along ``axis``; any shape."""

    axis: int = -1

    def forward(self, params, x, *, key=None, train=False):
        return ops.log_softmax(x, axis=self.axis)
