"""NumPy ufuncs on tracers: ``np.exp(t)``, ``np.maximum(t, 0)``, ``np.float32(2) * t`` run the fnnet op.

``Tracer.__array_ufunc__`` (installed by :mod:`fnnet.ops._operators`) looks the ufunc up here.  A ufunc
with an fnnet op runs it (so the gradient flows); comparisons and other boolean tests read the values and
return plain boolean arrays, as the comparison operators do; anything else raises a TypeError that names
the ufunc and says what to use instead, rather than numpy's "operand does not support ufuncs".
"""

from __future__ import annotations

import numpy as np

from ..autodiff import NoBatchingRule, Tracer
from ..autodiff.batching import apply_to_values
from . import arithmetic as A
from . import elementwise as E
from . import linalg as L

#: ufunc -> the fnnet op computing it (differentiable).
DIFFERENTIABLE = {
    np.add: A.add, np.subtract: A.subtract, np.multiply: A.multiply, np.divide: A.divide, np.power: A.power,
    np.maximum: A.maximum, np.minimum: A.minimum, np.matmul: L.matmul, np.negative: E.negative,
    np.absolute: E.abs, np.fabs: E.abs, np.exp: E.exp, np.log: E.log, np.sqrt: E.sqrt, np.tanh: E.tanh,
    np.positive: lambda x: x, np.square: lambda x: A.multiply(x, x),
}

#: ufuncs with boolean results (no gradient by design): computed on the values.
BOOLEAN = (np.less, np.less_equal, np.greater, np.greater_equal, np.equal, np.not_equal, np.isnan, np.isinf,
           np.isfinite, np.signbit, np.logical_and, np.logical_or, np.logical_not, np.logical_xor)

#: what to write instead, for ufuncs fnnet has no op for.
HINTS = {
    "sinh": "(fnnet.ops.exp(x) - fnnet.ops.exp(-x)) / 2", "cosh": "(fnnet.ops.exp(x) + fnnet.ops.exp(-x)) / 2",
    "expm1": "fnnet.ops.exp(x) - 1", "exp2": "fnnet.ops.power(2.0, x)", "log1p": "fnnet.ops.log(1 + x)",
    "log2": "fnnet.ops.log(x) / np.log(2)", "log10": "fnnet.ops.log(x) / np.log(10)",
    "reciprocal": "1 / x", "float_power": "fnnet.ops.power",
    "logaddexp": "fnnet.ops.logsumexp(fnnet.ops.stack([a, b]), axis=0)", "fmax": "fnnet.ops.maximum",
    "fmin": "fnnet.ops.minimum", "cbrt": "fnnet.ops.power(x, 1 / 3) (for x > 0)",
}
_STEPS = ("sign", "floor", "ceil", "rint", "trunc")  # piecewise constant: gradient 0 almost everywhere
_REDUCTIONS = {"add": "fnnet.ops.sum", "maximum": "fnnet.ops.max"}


def _values(inputs):
    return [x.value if type(x) is Tracer else x for x in inputs]


def array_ufunc(tracer, ufunc, method, *inputs, **kwargs):
    """``Tracer.__array_ufunc__``: run the fnnet op for ``ufunc`` or raise a TypeError naming the fix."""
    name = f"np.{ufunc.__name__}"
    if kwargs.get("out") is not None:
        raise TypeError(f"{name}(..., out=...) with a traced array cannot write its result in place (nor can an "
                        "augmented assignment such as a += t); assign the result instead: a = a + t")
    if method != "__call__":
        use = (f"broadcasting instead, e.g. {name}(a[:, None], b[None, :])" if method == "outer" else
               _REDUCTIONS.get(ufunc.__name__, "a reduction of fnnet.ops (sum, max, mean, logsumexp)"))
        raise TypeError(f"{name}.{method} on a traced array is not differentiable in fnnet; use {use}")
    extra = sorted(k for k in kwargs if k != "out")
    if ufunc in BOOLEAN:
        return ufunc(*_values(inputs), **kwargs)
    if extra:
        raise TypeError(f"{name}: keyword argument(s) {extra} are not supported on a traced array; call the "
                        "fnnet.ops function without them")
    op = DIFFERENTIABLE.get(ufunc)
    if op is not None:
        return op(*inputs)
    raise TypeError(f"{name} is not differentiable in fnnet (no fnnet.ops function implements it); {_advice(name)}")


def batched_array_ufunc(batched, ufunc, method, *inputs, **kwargs):
    """``Batched.__array_ufunc__`` (``fnnet.vmap``): the fnnet op for ``ufunc``, a boolean test per example;
    anything else cannot run on the whole batch, and vmap runs its per-example loop."""
    if method == "__call__" and not kwargs:
        if ufunc in BOOLEAN:
            return apply_to_values(ufunc, *inputs)
        op = DIFFERENTIABLE.get(ufunc)
        if op is not None:
            return op(*inputs)
    raise NoBatchingRule(f"np.{ufunc.__name__} (method {method!r}) was applied to a batched value")


def _advice(name):
    short = name[3:]
    if short in _STEPS:
        return (f"it is piecewise constant (zero gradient almost everywhere): apply it to the value, "
                f"{name}(fnnet.stop_gradient(x))")
    hint = HINTS.get(short)
    use = f"use {hint}" if hint else "compose it from fnnet.ops (exp, log, sqrt, tanh, power, ...) or define a " \
        "primitive with fnnet.primitive"
    return f"{use}; or apply {name} to fnnet.stop_gradient(x) if no gradient should flow"
