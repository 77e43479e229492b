"""Binary arithmetic with numpy broadcasting: add, subtract, multiply, divide, power, maximum, minimum,
where.  Each op's VJP sits right under its forward; cotangents come back in the broadcast output's shape
and the tape sums them to each operand's shape (``fnnet.autodiff.unbroadcast``)."""

from __future__ import annotations

import math

import numpy as np

from .. import kernels as K
from ..autodiff import Batched, primitive
from ..autodiff.batching import elementwise_batching
from ._validate import as_operand, check_array, check_same_dtype, contiguous, value

__all__ = ["add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "where"]


def _flat(x, shape, n):
    """(flat contiguous data, stride): a full-size operand has stride 1, a single element stride 0."""
    if x.shape == shape:
        return contiguous(x).reshape(-1), 1
    if x.size == 1:
        return contiguous(x).reshape(1), 0
    return np.ascontiguousarray(np.broadcast_to(x, shape)).reshape(-1), 1


def _operands(a, b):
    if a.shape == b.shape or b.size == 1 and b.ndim <= a.ndim:  # the common cases, without numpy's helpers
        shape = a.shape
    elif a.size == 1 and a.ndim <= b.ndim:
        shape = b.shape
    else:
        shape = np.broadcast_shapes(a.shape, b.shape)
    n = math.prod(shape)
    fa, sa = _flat(a, shape, n)
    fb, sb = _flat(b, shape, n)
    return fa, fb, sa, sb, n, shape


def _binary(op, a, b):
    a = as_operand(op, "a", a, like=b)
    b = as_operand(op, "b", b, like=a)
    check_same_dtype(op, a=a, b=b)
    try:
        np.broadcast_shapes(value(a).shape, value(b).shape)
    except ValueError:
        raise ValueError(
            f"{op}: shapes {value(a).shape} and {value(b).shape} do not broadcast (numpy rules: trailing "
            "dimensions must be equal or 1); reshape one operand"
        ) from None
    return a, b


def _add_fwd(a, b):
    fa, fb, sa, sb, n, shape = _operands(a, b)
    return K.add_fwd(fa, fb, sa, sb, n).reshape(shape), None


_add = primitive("add", _add_fwd, lambda res, g: (g, g), argnames=("a", "b"))


def _subtract_fwd(a, b):
    fa, fb, sa, sb, n, shape = _operands(a, b)
    return K.subtract_fwd(fa, fb, sa, sb, n).reshape(shape), None


def _subtract_bwd(res, g):
    return g, K.neg_fwd(contiguous(g).reshape(-1)).reshape(g.shape)


_subtract = primitive("subtract", _subtract_fwd, _subtract_bwd, argnames=("a", "b"))


def _with_operand_residuals(name, fwd_kernel, bwd_kernel, *flags):
    """Register a binary op whose VJP kernel reads both (flat) operands: ``bwd_kernel(fa, fb, g, sa, sb,
    *flags) -> (ga, gb)``, each in the broadcast output's shape; ``fwd_kernel(fa, fb, sa, sb, n, *flags)``."""

    def fwd(a, b):
        fa, fb, sa, sb, n, shape = _operands(a, b)
        return fwd_kernel(fa, fb, sa, sb, n, *flags).reshape(shape), (fa, fb, sa, sb)

    def bwd(res, g):
        fa, fb, sa, sb = res
        ga, gb = bwd_kernel(fa, fb, contiguous(g).reshape(-1), sa, sb, *flags)
        return ga.reshape(g.shape), gb.reshape(g.shape)

    return primitive(name, fwd, bwd, argnames=("a", "b"))


_multiply = _with_operand_residuals("multiply", K.multiply_fwd, K.multiply_bwd)
_divide = _with_operand_residuals("divide", K.divide_fwd, K.divide_bwd)
_maximum = _with_operand_residuals("maximum", K.select_fwd, K.select_bwd, True)
_minimum = _with_operand_residuals("minimum", K.select_fwd, K.select_bwd, False)


def _power_fwd(a, b):
    fa, fb, sa, sb, n, shape = _operands(a, b)
    y = K.power_fwd(fa, fb, sa, sb, n)
    return y.reshape(shape), (fa, fb, y, sa, sb)


def _power_bwd(res, g):
    fa, fb, y, sa, sb = res
    ga, gb = K.power_bwd(fa, fb, y, contiguous(g).reshape(-1), sa, sb)
    return ga.reshape(g.shape), gb.reshape(g.shape)


_power = primitive("power", _power_fwd, _power_bwd, argnames=("a", "b"))


def _where_fwd(cond, a, b):
    shape = np.broadcast_shapes(cond.shape, a.shape, b.shape)
    n = int(np.prod(shape, dtype=np.int64))
    fc, sc = _flat(cond, shape, n)
    fa, sa = _flat(a, shape, n)
    fb, sb = _flat(b, shape, n)
    return K.where_fwd(fc, fa, fb, sc, sa, sb, n).reshape(shape), (fc, sc)


def _where_bwd(res, g):
    fc, sc = res
    ga, gb = K.where_bwd(fc, contiguous(g).reshape(-1), sc)
    return None, ga.reshape(g.shape), gb.reshape(g.shape)


_where = primitive("where", _where_fwd, _where_bwd, argnames=("condition", "a", "b"))


def add(a, b):
    """Elementwise ``a + b`` with numpy broadcasting.  Args: float arrays of one dtype, or numbers."""
    return _add(*_binary("add", a, b))


def subtract(a, b):
    """Elementwise ``a - b`` with broadcasting."""
    return _subtract(*_binary("subtract", a, b))


def multiply(a, b):
    """Elementwise ``a * b`` with broadcasting."""
    return _multiply(*_binary("multiply", a, b))


def divide(a, b):
    """Elementwise ``a / b`` with broadcasting (IEEE results for division by zero: inf/nan)."""
    return _divide(*_binary("divide", a, b))


def power(a, b):
    """Elementwise ``a ** b``.  d/db is ``a**b * log(a)`` where ``a > 0`` and 0 elsewhere."""
    return _power(*_binary("power", a, b))


def maximum(a, b):
    """Elementwise maximum; at ties the gradient is split equally between ``a`` and ``b``."""
    return _maximum(*_binary("maximum", a, b))


def minimum(a, b):
    """Elementwise minimum; at ties the gradient is split equally between ``a`` and ``b``."""
    return _minimum(*_binary("minimum", a, b))


def where(condition, a, b):
    """``a`` where ``condition`` is true, else ``b``; all three broadcast together.

    Args:
        condition: boolean array (not differentiable).
        a, b: float arrays of one dtype, or numbers.
    """
    cond = value(condition)
    if not isinstance(cond, (np.ndarray, Batched)) or cond.dtype != np.bool_:  # Batched: a mask per example (vmap)
        raise TypeError(
            f"where: condition must be a boolean numpy array, got "
            f"{getattr(cond, 'dtype', type(cond).__name__)}; build it with a comparison such as x > 0"
        )
    cond = check_array("where", "condition", cond)
    a, b = _binary("where", a, b)
    try:
        np.broadcast_shapes(cond.shape, value(a).shape, value(b).shape)
    except ValueError:
        raise ValueError(
            f"where: condition {cond.shape}, a {value(a).shape} and b {value(b).shape} do not broadcast"
        ) from None
    return _where(cond, a, b)


# fnnet.vmap: the examples broadcast against unbatched operands, per example (numpy's rules)
for _prim in (_add, _subtract, _multiply, _divide, _maximum, _minimum, _power, _where):
    elementwise_batching(_prim)
