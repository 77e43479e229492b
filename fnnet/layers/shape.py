"""Shape layers: ``Flatten``, ``Reshape`` and ``Identity``."""

from __future__ import annotations

import math

import attrs

from .. import ops
from .base import Layer, as_shape, check_passthrough, register

__all__ = ["Flatten", "Reshape", "Identity"]


@attrs.frozen
class _DataMovement(Layer):
    """Estimates shared by layers that only change shapes: no arithmetic, nothing kept for the backward."""

    def flops(self, in_shape):
        return 0

    def tape_bytes(self, in_shape, dtype):
        return 0


@register
@attrs.frozen
class Flatten(_DataMovement):
    """Merge the axes from ``start_axis`` on: ``(N, C, H, W) -> (N, C*H*W)`` with the default 1."""

    start_axis: int = 1

    def _start(self, shape) -> int:
        """``start_axis`` as a non-negative axis of ``shape``."""
        if not -len(shape) <= self.start_axis < len(shape):
            hint = "; a 0-d input has no axes to flatten, reshape it to (1,) first" if not shape else ""
            raise ValueError(f"Flatten: start_axis={self.start_axis} is out of range for input shape {shape}{hint}")
        return self.start_axis % len(shape)

    def out_shape(self, in_shape):
        shape = as_shape(in_shape, "Flatten")
        start = self._start(shape)
        tail = shape[start:]
        merged = None if any(s is None for s in tail) else math.prod(tail)
        return (*shape[:start], merged)

    def forward(self, params, x, *, key=None, train=False):
        start = self._start(tuple(x.shape))
        return ops.reshape(x, (*x.shape[:start], -1 if x.size else math.prod(x.shape[start:])))


@register
@attrs.frozen
class Reshape(_DataMovement):
    """Reshape every example (the batch axis is kept): ``(N, *a) -> (N, *shape)``; one entry may be -1."""

    shape: tuple = attrs.field(converter=tuple)

    def out_shape(self, in_shape):
        s = as_shape(in_shape, "Reshape")
        if any(d is None for d in s[1:]):
            return (s[0], *self.shape)
        size = math.prod(s[1:])
        known = math.prod(d for d in self.shape if d != -1)
        if list(self.shape).count(-1) > 1 or (-1 in self.shape and (known == 0 or size % known)) or (
            -1 not in self.shape and known != size
        ):
            raise ValueError(f"Reshape: cannot reshape examples of shape {s[1:]} (size {size}) into {self.shape}")
        return (s[0], *(size // known if d == -1 else d for d in self.shape))

    def forward(self, params, x, *, key=None, train=False):
        return ops.reshape(x, self.out_shape(tuple(x.shape)))


@register
@attrs.frozen
class Identity(_DataMovement):
    """Return the input unchanged."""

    def forward(self, params, x, *, key=None, train=False):
        return check_passthrough(self, x)
