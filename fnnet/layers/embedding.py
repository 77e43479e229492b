"""``Embedding``: a lookup table of learned vectors."""

from __future__ import annotations

import numbers

import attrs
import numpy as np

from .. import init as initializers
from .. import ops
from .base import Layer, TorchParam, as_shape, check_param, check_params, numel, positive_int, register

__all__ = ["Embedding"]


def _padding_idx(instance, attribute, value):
    if value is None:
        return
    num = instance.num_embeddings
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not -num <= value < num:
        raise ValueError(f"Embedding: padding_idx must be None or an int in [{-num}, {num - 1}] (a row of the "
                         f"{num}-row table; negative values count from the end), got {value!r}")


@register
@attrs.frozen
class Embedding(Layer):
    """Map integer indices to rows of ``weight``, like ``torch.nn.Embedding``.

    Args:
        num_embeddings: table size; valid indices are ``0 .. num_embeddings - 1`` (others raise IndexError).
        features: vector size (PyTorch's ``embedding_dim``).
        w_init: initializer of the table, default ``N(0, 1)`` (as PyTorch).
        padding_idx: None, or the row of the padding token: it is initialised to zeros and receives no
            gradient, so it stays as it is during training (its value is still looked up).  Negative values
            count from the end, as in PyTorch (``-1`` is row ``num_embeddings - 1``).

    Params: ``{"weight": (num_embeddings, features)}``.  Shapes: ``indices (...) int -> (..., features)``.

    Example::

        emb = Embedding(1000, 64, padding_idx=0)  # torch.nn.Embedding(1000, 64, padding_idx=0)
        params = emb.init(fnnet.random.key(0), (None, 20))
        vectors = emb.apply(params, tokens)       # tokens: int64 (batch, 20) -> (batch, 20, 64)
    """

    num_embeddings: int = attrs.field(validator=positive_int)
    features: int = attrs.field(validator=positive_int)
    w_init: initializers.Initializer = initializers.Normal(std=1.0)
    padding_idx: int | None = attrs.field(default=None, validator=_padding_idx)

    def init(self, key, in_shape, dtype=np.float32):
        as_shape(in_shape, "Embedding.init")
        weight = self.w_init(key, (self.num_embeddings, self.features), dtype)
        if self.padding_idx is not None and isinstance(weight, np.ndarray):  # not a ShapeDtype (abstract init)
            weight = weight if weight.flags.writeable else weight.copy()
            weight[self.padding_idx] = 0
        return {"weight": weight}

    integer_input = True

    def out_shape(self, in_shape):
        return (*as_shape(in_shape, "Embedding"), self.features)

    def flops(self, in_shape):
        return 0  # a copy of rows

    def tape_bytes(self, in_shape, dtype):
        return numel(in_shape) * 8  # the int64 indices

    def torch_layout(self):
        return (TorchParam("weight", shape=(self.num_embeddings, self.features)),)

    def forward(self, params, x, *, key=None, train=False):
        check_params("Embedding", params, ("weight",))
        table = check_param("Embedding", params, "weight", 2, "(num_embeddings, features)")
        expected = (self.num_embeddings, self.features)
        if tuple(table.shape) != expected:
            raise ValueError(f"Embedding: params['weight'] must have shape {expected} (num_embeddings, features), got "
                             f"{tuple(table.shape)}; re-create the params with init()")
        return ops.embedding(x, table, padding_idx=self.padding_idx)
