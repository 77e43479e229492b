"""``Dropout``: randomly zero activations in training."""

from __future__ import annotations

import attrs

from .. import ops
from .base import Layer, register

__all__ = ["Dropout"]


def _rate(instance, attribute, value):
    if not 0.0 <= value < 1.0:
        raise ValueError(f"Dropout: rate is the probability of dropping and must be in [0, 1), got {value!r}")


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
            return x
        if key is None:
            raise ValueError(
                "Dropout: a random key is needed when train=True; call "
                "model.apply(params, x, key=fnnet.random.key(seed), train=True) (split a fresh key every step)"
            )
        return ops.dropout(x, key, self.rate, train=True)
