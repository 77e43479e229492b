"""``Linear``: the fully connected layer."""

from __future__ import annotations

import attrs
import numpy as np

from .. import init as initializers
from .. import ops
from .. import random as fnrandom
from .base import Layer, TorchParam, as_shape, check_param, check_params, numel, positive_int, register

__all__ = ["Linear"]


@register
@attrs.frozen
class Linear(Layer):
    """``y = x @ weight + bias`` over the last axis.

    Args:
        out_features: size of the last output axis.
        use_bias: add a learned bias.
        w_init: initializer of ``weight``, default Glorot/Xavier uniform.
        b_init: initializer of ``bias``, default zeros.

    Params: ``{"weight": (in_features, out_features), "bias": (out_features,)}``.  The weight layout is
    ``(in, out)``, the transpose of PyTorch's ``nn.Linear.weight`` (``fnnet.io`` converts).

    Shapes: ``x (..., in_features) -> y (..., out_features)``.

    Example::

        layer = Linear(10)
        params = layer.init(fnnet.random.key(0), (None, 784))
        y = layer.apply(params, np.zeros((32, 784), np.float32))   # (32, 10)
    """

    out_features: int = attrs.field(validator=positive_int)
    use_bias: bool = True
    w_init: initializers.Initializer = initializers.glorot_uniform
    b_init: initializers.Initializer = initializers.zeros

    def init(self, key, in_shape, dtype=np.float32):
        shape = as_shape(in_shape, "Linear.init")
        if len(shape) < 1 or shape[-1] is None:
            raise ValueError(f"Linear.init: the last axis of in_shape must be a known size (in_features), got {shape}")
        wkey, bkey = fnrandom.split(key)
        params = {"weight": self.w_init(wkey, (shape[-1], self.out_features), dtype)}
        if self.use_bias:
            params["bias"] = self.b_init(bkey, (self.out_features,), dtype)
        return params

    def out_shape(self, in_shape):
        shape = as_shape(in_shape, "Linear.out_shape")
        if len(shape) < 1:
            raise ValueError(f"Linear: input must have at least 1 axis, got shape {shape}")
        return (*shape[:-1], self.out_features)

    def forward(self, params, x, *, key=None, train=False):
        return self._linear(params, x, None)

    compile_cost = 2
    fusable_activations = frozenset({"relu"})

    def apply_fused(self, params, x, activation):
        """``relu(apply(params, x))`` in one fused kernel (used by ``Sequential`` for Linear -> ReLU)."""
        return self._linear(params, x, activation)

    def flops(self, in_shape):
        return 2 * numel(in_shape) * self.out_features + (numel(self.out_shape(in_shape)) if self.use_bias else 0)

    def tape_bytes(self, in_shape, dtype):
        return numel(in_shape) * np.dtype(dtype).itemsize  # x, for the weight gradient

    def torch_layout(self):
        weight = TorchParam("weight", shape=("in_features", self.out_features), transpose=True)
        return (weight, TorchParam("bias", shape=(self.out_features,))) if self.use_bias else (weight,)

    def _linear(self, params, x, activation):
        check_params("Linear", params, ("weight", "bias") if self.use_bias else ("weight",))
        w = check_param("Linear", params, "weight", 2, "(in_features, out_features)")
        bias = check_param("Linear", params, "bias", 1, "(out_features,)") if self.use_bias else None
        if w.shape[-1] != self.out_features:
            raise ValueError(f"Linear: params['weight'] has shape {w.shape}, but out_features={self.out_features}")
        if x.shape[-1:] != w.shape[:1]:
            raise ValueError(
                f"Linear: expected input (..., {w.shape[0]}) (the in_features of params['weight'] {w.shape}), "
                f"got shape {tuple(x.shape)}; add Flatten() before Linear or re-init for this input"
            )
        return ops.linear(x, w, bias, activation=activation)
