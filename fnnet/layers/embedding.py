"""``Embedding``: a lookup table of learned vectors."""

from __future__ import annotations

import attrs
import numpy as np

from .. import init as initializers
from .. import ops
from .base import Layer, as_shape, check_params, positive_int, register

__all__ = ["Embedding"]


@register
@attrs.frozen
class Embedding(Layer):
    """Map integer indices to rows of ``weight``.

    Args:
        num_embeddings: table size; valid indices are ``0 .. num_embeddings - 1`` (others raise IndexError).
        features: vector size.
        w_init: initializer of the table, default ``N(0, 1)`` (as PyTorch).

    Params: ``{"weight": (num_embeddings, features)}``.  Shapes: ``indices (...) int -> (..., features)``.
    """

    num_embeddings: int = attrs.field(validator=positive_int)
    features: int = attrs.field(validator=positive_int)
    w_init: initializers.Initializer = initializers.Normal(std=1.0)

    def init(self, key, in_shape, dtype=np.float32):
        as_shape(in_shape, "Embedding.init")
        return {"weight": self.w_init(key, (self.num_embeddings, self.features), dtype)}

    def out_shape(self, in_shape):
        return (*as_shape(in_shape, "Embedding"), self.features)

    def forward(self, params, x, *, key=None, train=False):
        check_params("Embedding", params, ("weight",))
        return ops.embedding(x, params["weight"])
