"""Reverse-mode automatic differentiation by dynamic tracing (see docs/design.md, "Tracing")."""

from .batching import Batched, NoBatchingRule
from .primitive import (
    NON_DIFFERENTIABLE, Primitive, UnexpectedTracerError, check_finite, get_primitive, primitive, registered_primitives,
)
from .tape import Tape, Tracer, is_tracer, unbroadcast, value_of
from .transforms import checkpoint, grad, last_tape_stats, stop_gradient, value_and_grad, vjp

__all__ = [
    "Batched", "NON_DIFFERENTIABLE", "NoBatchingRule", "Primitive", "Tape", "Tracer", "UnexpectedTracerError",
    "check_finite", "checkpoint", "get_primitive", "grad",
    "is_tracer", "last_tape_stats", "primitive", "registered_primitives", "stop_gradient", "unbroadcast",
    "value_and_grad", "value_of", "vjp",
]
