"""Python operators on tracers, so ordinary numpy-style loss code is differentiable.

The autodiff package defines the tracer but knows no ops (imports flow one way), so the ops package
installs them here.
"""

from __future__ import annotations

import operator

import numpy as np

from ..autodiff import Batched, Tracer
from ..autodiff.batching import apply_to_values
from . import arithmetic as A
from . import elementwise as E
from . import indexing as I
from . import linalg as L
from . import reduce as R
from . import shape as S
from ._ufuncs import array_ufunc, batched_array_ufunc


def _compare(fn):
    def compare(self, other):
        recorder = self.tape.jit or (other.tape.jit if type(other) is Tracer else None)
        if recorder is not None:  # under fnnet.jit the boolean result is traced as well
            return recorder.call_host(fn, (recorder.export(self), recorder.export(other)), {})
        return fn(self.value, other.value if type(other) is Tracer else other)

    return compare


def _on_integers(method, op):
    """``method`` of a tracer; on fnnet.jit's integer and boolean arrays (labels, keys, masks), which no op
    differentiates, numpy's ``op`` recorded as a host step (e.g. a row of split keys, flattened labels)."""

    def dispatch(s, *args):
        if type(s) is Tracer and s.tape.jit is not None and s.dtype.kind != "f":
            return s.tape.jit.call_host(op, (s, *args), {})
        return method(s, *args)

    return dispatch


def _reduction(name, op):
    """``x.sum(...)``-style method, also reached by ``np.sum(x)`` (numpy calls the method with ``dtype``
    and ``out``): the fnnet op, or a clear error for the arguments it cannot honour."""

    def method(s, axis=None, dtype=None, out=None, keepdims=False, **unsupported):
        if out is not None or unsupported.get("where", True) is not True or unsupported.get("initial") is not None:
            raise TypeError(f"{name} of a traced array: out=, where= and initial= are not supported; use "
                            f"fnnet.ops.{name}(x, axis, keepdims) and compute into a new array")
        if dtype is not None and np.dtype(dtype) != s.dtype:
            raise TypeError(f"{name} of a traced array: dtype={np.dtype(dtype)} would change the dtype "
                            f"{s.dtype}; cast first with fnnet.precision.cast(x, dtype)")
        return op(s, axis, keepdims)

    return method


def _reshape(a, *shape):
    return a.reshape(*shape)


def _transpose(a, *axes):
    return a.transpose(*axes)


def install() -> None:
    T = Tracer
    T.__add__ = lambda s, o: A.add(s, o)
    T.__radd__ = lambda s, o: A.add(o, s)
    T.__sub__ = lambda s, o: A.subtract(s, o)
    T.__rsub__ = lambda s, o: A.subtract(o, s)
    T.__mul__ = lambda s, o: A.multiply(s, o)
    T.__rmul__ = lambda s, o: A.multiply(o, s)
    T.__truediv__ = lambda s, o: A.divide(s, o)
    T.__rtruediv__ = lambda s, o: A.divide(o, s)
    T.__pow__ = lambda s, o: A.power(s, o)
    T.__rpow__ = lambda s, o: A.power(o, s)
    T.__matmul__ = lambda s, o: L.matmul(s, o)
    T.__rmatmul__ = lambda s, o: L.matmul(o, s)
    T.__neg__ = lambda s: E.negative(s)
    T.__pos__ = lambda s: s
    T.__abs__ = lambda s: E.abs(s)
    T.__lt__ = _compare(lambda a, b: a < b)
    T.__le__ = _compare(lambda a, b: a <= b)
    T.__gt__ = _compare(lambda a, b: a > b)
    T.__ge__ = _compare(lambda a, b: a >= b)
    T.__eq__ = _compare(lambda a, b: a == b)
    T.__ne__ = _compare(lambda a, b: a != b)
    T.__hash__ = object.__hash__
    T.__array_ufunc__ = array_ufunc  # np.exp(t), np.maximum(t, 0), np.float32(2) * t run fnnet ops
    T.T = property(lambda s: S.transpose(s))
    T.reshape = _on_integers(lambda s, *shape: S.reshape(s, shape[0] if len(shape) == 1 else shape), _reshape)
    T.transpose = _on_integers(lambda s, *axes: S.transpose(s, (axes[0] if len(axes) == 1 else axes) or None),
                               _transpose)
    T.__getitem__ = _on_integers(lambda s, index: I.getitem(s, index), operator.getitem)
    T.sum = _reduction("sum", R.sum)
    T.mean = _reduction("mean", R.mean)
    T.max = _reduction("max", R.max)
    _install_batched(T)


_SHARED = ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
           "__pow__", "__rpow__", "__matmul__", "__rmatmul__", "__neg__", "__pos__", "__abs__", "T", "reshape",
           "transpose", "sum", "mean", "max")
_COMPARISONS = {"__lt__": operator.lt, "__le__": operator.le, "__gt__": operator.gt, "__ge__": operator.ge,
                "__eq__": operator.eq, "__ne__": operator.ne}


def _install_batched(T) -> None:
    """The tracer's operators on ``Batched`` values (``fnnet.vmap``): the same ops; comparisons give one
    boolean array per example; labels and masks are indexed per example."""
    B = Batched
    for name in _SHARED:
        setattr(B, name, vars(T)[name])
    for name, fn in _COMPARISONS.items():
        setattr(B, name, lambda s, o, fn=fn: apply_to_values(fn, s, o))
    B.__hash__ = object.__hash__
    B.__getitem__ = lambda s, index: I.getitem(s, index) if s.dtype.kind == "f" else s.select(index)
    B.__array_ufunc__ = batched_array_ufunc
