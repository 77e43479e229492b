"""Deliberately broken ops, one per failure class, to test the fuzzer itself (``test_fuzz.py``).

Each wraps a correct fnnet op and breaks it in one way that only a mutation reveals, so the canonical
call (which the main test tables check) stays right.
"""

import os
import time

import numpy as np

import fnnet
from fnnet import ops
from fnnet.autodiff import Primitive
from fnnet.testing.fuzz.specs import F, OpSpec


def _nan_to_zero_relu(x):
    """relu whose kernel ignores NaN: the bug the fuzzer must catch (``relu(nan)`` is nan in NumPy)."""
    y = ops.relu(x)
    value = fnnet.stop_gradient(x)
    return ops.where(np.isnan(value), 0.0, y) if isinstance(value, np.ndarray) else y


def _wrong_vjp_fwd(x):
    return x * 2.0, x.dtype


def _wrong_vjp_bwd(dtype, g):
    return (g * (2.0 if dtype == np.float32 else 3.0),)  # wrong only in float64


_wrong_vjp = Primitive("fuzz_selftest_wrong_vjp", _wrong_vjp_fwd, _wrong_vjp_bwd)  # not registered


def _abort_on_nan(x):
    if np.isnan(fnnet.stop_gradient(x)).any():
        os.abort()
    return ops.exp(x)


def _hang_on_inf(x):
    if np.isinf(fnnet.stop_gradient(x)).any():
        time.sleep(3600)
    return ops.tanh(x)


def _unnamed_error(x):
    if np.asarray(fnnet.stop_gradient(x)).dtype != np.float32:
        raise ValueError("expected float32")  # names no op: not a clean error
    return ops.negative(x)


def _reads_raw_memory(x):
    """Forward that reads the buffer in memory order: wrong for a transposed (F-ordered) input."""
    v = fnnet.stop_gradient(x)
    raw = np.frombuffer(v.tobytes(order="A"), dtype=v.dtype).reshape(v.shape)
    return ops.add(ops.multiply(x, 0.0), raw)


TARGETS = [
    OpSpec("nan_relu", _nan_to_zero_relu, (F(3, 4),), lambda x: np.maximum(x, 0.0), covers="relu"),
    OpSpec("wrong_vjp", _wrong_vjp, (F(3, 4),), lambda x: 2 * x, covers="multiply"),
    OpSpec("abort", _abort_on_nan, (F(3, 4),), np.exp, covers="exp"),
    OpSpec("hang", _hang_on_inf, (F(3, 4),), np.tanh, covers="tanh"),
    OpSpec("unnamed", _unnamed_error, (F(3, 4),), np.negative, covers="negative"),
    OpSpec("raw_memory", _reads_raw_memory, (F(3, 4),), lambda x: x, covers="add"),
]
