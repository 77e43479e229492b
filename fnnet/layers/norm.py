"""Normalisation layers: ``BatchNorm`` (with running statistics as state) and ``LayerNorm``."""

from __future__ import annotations

import attrs
import numpy as np

from .. import init as initializers
from .. import ops
from .base import Layer, as_shape, check_params, register

__all__ = ["BatchNorm", "LayerNorm"]


def _probability(instance, attribute, value):
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{type(instance).__name__}: {attribute.name} must be in [0, 1], got {value!r}")


def _positive(instance, attribute, value):
    if not value > 0:
        raise ValueError(f"{type(instance).__name__}: {attribute.name} must be > 0, got {value!r}")


@register
@attrs.frozen
class BatchNorm(Layer):
    """Batch normalisation over the channel axis 1 of ``(N, C)`` or ``(N, C, H, W)`` inputs.

    Training (``train=True``) normalises with the batch mean and biased variance, and returns running
    statistics updated PyTorch's way: ``new = (1 - momentum) * old + momentum * batch`` with the *unbiased*
    batch variance.  Evaluation uses the running statistics.

    Args:
        momentum: weight of the current batch in the running statistics.
        eps: added to the variance.
        affine: learn a per-channel scale ``weight`` (init 1) and shift ``bias`` (init 0).

    Params: ``{"weight": (C,), "bias": (C,)}`` (``{}`` without ``affine``).
    State: ``{"mean": (C,), "var": (C,)}``, initialised to 0 and 1.  The state is required::

        state = model.init_state(in_shape)
        y, state = model.apply(params, x, state=state, train=True)
    """

    momentum: float = attrs.field(default=0.1, validator=_probability)
    eps: float = attrs.field(default=1e-5, validator=_positive)
    affine: bool = True

    @property
    def has_state(self):
        return True

    def _channels(self, in_shape, where):
        shape = as_shape(in_shape, where)
        if len(shape) not in (2, 4) or shape[1] is None:
            raise ValueError(f"{where}: expected (N, C) or (N, C, H, W) with a known C, got shape {shape}")
        return shape[1]

    def out_shape(self, in_shape):
        self._channels(in_shape, "BatchNorm")
        return as_shape(in_shape)

    def init(self, key, in_shape, dtype=np.float32):
        c = self._channels(in_shape, "BatchNorm.init")
        if not self.affine:
            return {}
        return {"weight": initializers.ones(key, (c,), dtype), "bias": initializers.zeros(key, (c,), dtype)}

    def init_state(self, in_shape, dtype=np.float32):
        c = self._channels(in_shape, "BatchNorm.init_state")
        return {"mean": np.zeros(c, dtype), "var": np.ones(c, dtype)}

    def apply(self, params, x, *, state=None, key=None, train=False):
        check_params("BatchNorm", params, ("weight", "bias") if self.affine else ())
        if state is None:
            raise ValueError(
                "BatchNorm: running statistics are state and must be passed in: "
                "y, state = model.apply(params, x, state=state, train=...) with state = model.init_state(in_shape)"
            )
        check_params("BatchNorm (state)", state, ("mean", "var"))
        y, mean, var = ops.batch_norm(x, params.get("weight"), params.get("bias"), state["mean"], state["var"],
                                      train=train, momentum=self.momentum, eps=self.eps)
        return y, {"mean": mean, "var": var}


@register
@attrs.frozen
class LayerNorm(Layer):
    """Normalise over the last axis: ``(x - mean) / sqrt(var + eps) * weight + bias`` (biased variance).

    Params: ``{"weight": (F,), "bias": (F,)}`` (``{}`` without ``affine``).  Shapes: ``(..., F) -> (..., F)``.
    """

    eps: float = attrs.field(default=1e-5, validator=_positive)
    affine: bool = True

    def init(self, key, in_shape, dtype=np.float32):
        shape = as_shape(in_shape, "LayerNorm.init")
        if not shape or shape[-1] is None:
            raise ValueError(f"LayerNorm.init: the last axis must have a known size, got {shape}")
        if not self.affine:
            return {}
        return {"weight": initializers.ones(key, shape[-1:], dtype), "bias": initializers.zeros(key, shape[-1:], dtype)}

    def forward(self, params, x, *, key=None, train=False):
        check_params("LayerNorm", params, ("weight", "bias") if self.affine else ())
        return ops.layer_norm(x, params.get("weight"), params.get("bias"), eps=self.eps)
