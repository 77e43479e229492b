"""attrs fields shared by the convolution and pooling layers: per-axis ints and paddings, converted from
what users (and JSON configs) write and validated by :mod:`fnnet.ops.geometry`, the same rules the ops use."""

from __future__ import annotations

import attrs

from ..ops.geometry import int_tuple, is_int
from ..ops.pad import PAD_MODES

__all__ = ["ints_field", "padding_field", "padding_mode_field"]


def _to_tuples(value):
    """Lists from JSON configs become tuples, nested ones included; anything else is left for validation."""
    if isinstance(value, list):
        return tuple(_to_tuples(v) for v in value)
    return value


def _ints_converter(ndim):
    def convert(value):
        return (int(value),) * ndim if is_int(value) else _to_tuples(value)
    return convert


def _ints_validator(ndim, minimum, optional):
    def validate(instance, attribute, value):
        if not (optional and value is None):
            int_tuple(type(instance).__name__, attribute.name, value, ndim, minimum)
    return validate


def ints_field(ndim: int, *, default=attrs.NOTHING, minimum: int = 1, optional: bool = False):
    """A field holding one int per spatial axis (an int is repeated); ``optional`` allows None."""
    return attrs.field(default=default, converter=_ints_converter(ndim),
                       validator=_ints_validator(ndim, minimum, optional))


def padding_field(ndim: int, default=0):
    """A convolution padding: ``'same'``, ``'valid'``, or per axis an int or a ``(before, after)`` pair
    (validated with the other hyperparameters by ``geometry.conv_window``)."""
    return attrs.field(default=default, converter=_ints_converter(ndim))


def _check_padding_mode(instance, attribute, value):
    if value not in PAD_MODES:
        raise ValueError(f"{type(instance).__name__}: padding_mode must be one of {PAD_MODES}, got {value!r}")


def padding_mode_field():
    """A convolution's ``padding_mode`` (PyTorch's names): ``'zeros'``, ``'reflect'``, ``'replicate'`` or
    ``'circular'``."""
    return attrs.field(default="zeros", validator=_check_padding_mode)
