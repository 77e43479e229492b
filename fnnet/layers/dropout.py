"""``Dropout`` and ``Dropout2D``: randomly zero activations (or whole channels) in training."""

from __future__ import annotations

import attrs

from .. import ops
from .base import Layer, as_shape, check_passthrough, numel, register

__all__ = ["Dropout", "Dropout2D"]


def _rate(instance, attribute, value):
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{type(instance).__name__}: rate is the probability of dropping and must be in [0, 1), "
                         f"got {value!r}")


def _missing_key(name):
    return ValueError(
        f"{name}: a random key is needed when train=True; call "
        "model.apply(params, x, key=fnnet.random.key(seed), train=True) (split a fresh key every step)"
    )


@register
@attrs.frozen
class Dropout(Layer):
    """Zero each element with probability ``rate`` in training and scale the rest by ``1 / (1 - rate)``
    (inverted dropout), so evaluation (``train=False``) is the identity.

    A key is required in training; the same key gives the same mask::

        y = model.apply(params, x, key=fnnet.random.key(step), train=True)
    """

    rate: float = attrs.field(validator=_rate)

    def forward(self, params, x, *, key=None, train=False):
        if not train or self.rate == 0.0:
            return check_passthrough(self, x)
        if key is None:
            raise _missing_key("Dropout")
        return ops.dropout(x, key, self.rate, train=True)

    def flops(self, in_shape):
        return numel(in_shape)

    def tape_bytes(self, in_shape, dtype):
        return numel(in_shape) if self.rate > 0 else 0  # one byte of mask per element


@register
@attrs.frozen
class Dropout2D(Layer):
    """Channel dropout, like ``torch.nn.Dropout2d``: in training each channel ``x[n, c]`` of an ``(N, C, H, W)``
    input is zeroed as a whole with probability ``rate`` and the surviving channels are scaled by
    ``1 / (1 - rate)``; evaluation is the identity.  On ``(N, C, L)`` inputs whole length-``L`` channels are
    dropped (what ``torch.nn.Dropout2d`` does with 3-D input, and ``torch.nn.Dropout1d``).

    Useful after convolutions, whose neighbouring pixels are strongly correlated, so dropping single pixels
    regularises little.  A key is required in training; the same key gives the same mask.

    Shapes: ``(N, C, L)`` or ``(N, C, H, W)``, unchanged.

    Reference: Tompson et al., "Efficient Object Localization Using Convolutional Networks", 2015.
    """

    rate: float = attrs.field(validator=_rate)

    def out_shape(self, in_shape):
        shape = as_shape(in_shape, "Dropout2D")
        if len(shape) not in (3, 4):
            raise ValueError(f"Dropout2D: expected an input (N, C, H, W) or (N, C, L), got shape {shape}; "
                             "use Dropout for (N, features) inputs")
        return shape

    def forward(self, params, x, *, key=None, train=False):
        self.out_shape(tuple(x.shape))
        if not train or self.rate == 0.0:
            return check_passthrough(self, x)
        if key is None:
            raise _missing_key("Dropout2D")
        return ops.channel_dropout(x, key, self.rate, train=True)

    def flops(self, in_shape):
        return numel(in_shape)

    def tape_bytes(self, in_shape, dtype):
        return numel(in_shape[:2]) if self.rate > 0 else 0  # one byte of mask per channel
