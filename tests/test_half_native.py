"""float16 kernels that read and write half bits directly (``fnnet.autodiff.half.def_native``): bitwise the
widen / float32 kernel / narrow path they replace, over odd shapes, bias and ReLU on and off, each subset of
wanted cotangents, strided and batched inputs; and the conversion kernels' serial path for small arrays."""

import numpy as np
import pytest

import fnnet
from fnnet import ops
from fnnet.autodiff import half
from fnnet.kernels import half as half_kernels
from fnnet.kernels._jit import SERIAL_WORK
from fnnet.ops.linalg import _linear

SHAPES = [((128, 784), 256), ((5, 7), 3), ((1, 1), 1), ((0, 4), 3), ((2, 1, 5), 1), ((1030, 33), 17),
          ((300, 65), 1), ((2, 3, 9), 4)]


def _bits(a):
    return np.ascontiguousarray(a).reshape(-1).view(np.uint16)


def _same_bits(a, b):
    assert (a is None) == (b is None)
    if a is not None:
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype == np.float16 and a.shape == b.shape
        np.testing.assert_array_equal(_bits(a), _bits(b))


def _widening_path(monkeypatch):
    """Run ``linear`` on float16 as every primitive without a native rule does (for the reference)."""
    monkeypatch.delitem(half._native, _linear)


def _linear_and_grads(x, w, b, relu, wrt):
    """``linear``'s float16 output and the float16 gradients of ``sum(y * probe)`` w.r.t. ``wrt``."""
    probe = np.random.default_rng(7).standard_normal((*x.shape[:-1], w.shape[1])).astype(np.float16)
    activation = "relu" if relu else None
    args = {"x": x, "w": w, "b": b}

    def f(*traced):
        values = {**args, **dict(zip(wrt, traced))}
        y = ops.linear(values["x"], values["w"], values["b"], activation=activation)
        return ops.sum(ops.multiply(y, probe))  # its float16 cotangent reaches linear's VJP

    y = ops.linear(x, w, b, activation=activation)
    grads = fnnet.grad(f, argnums=tuple(range(len(wrt))))(*(args[k] for k in wrt)) if wrt else ()
    return y, grads


def _data(x_shape, out, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float16)
    w = (rng.standard_normal((x_shape[-1], out)) * scale).astype(np.float16)
    b = rng.standard_normal(out).astype(np.float16)
    return x, w, b


@pytest.mark.parametrize("x_shape,out", SHAPES, ids=[f"{s}x{o}" for s, o in SHAPES])
@pytest.mark.parametrize("relu", [False, True], ids=["plain", "relu"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_native_linear_is_bitwise_the_widening_path(monkeypatch, x_shape, out, relu, bias):
    x, w, b = _data(x_shape, out, scale=0.3)
    b = b if bias else None
    for wrt in (("x", "w", "b") if bias else ("x", "w"), ("w", "b") if bias else ("w",), ("x",)):
        ours = _linear_and_grads(x, w, b, relu, wrt)
        with monkeypatch.context() as m:
            _widening_path(m)
            theirs = _linear_and_grads(x, w, b, relu, wrt)
        _same_bits(ours[0], theirs[0])
        assert len(ours[1]) == len(theirs[1]) == len(wrt)
        for u, v in zip(ours[1], theirs[1]):
            _same_bits(u, v)


def test_native_linear_reads_strided_inputs_and_special_values(monkeypatch):
    x, w, b = _data((12, 10), 6, seed=3)
    x[0, :3] = [np.inf, -np.inf, np.nan]
    w[1, 2] = 65504.0  # an output overflows to inf in float16
    x[1, 1] = 1000.0
    strided_x, strided_w = x[:, ::2], w[::2]
    for relu in (False, True):
        ours = _linear_and_grads(strided_x, strided_w, b[::-1], relu, ("x", "w", "b"))
        with monkeypatch.context() as m:
            _widening_path(m)
            theirs = _linear_and_grads(strided_x, strided_w, b[::-1], relu, ("x", "w", "b"))
        _same_bits(ours[0], theirs[0])
        for u, v in zip(ours[1], theirs[1]):
            _same_bits(u, v)


def test_native_linear_falls_back_to_the_widening_backward_for_a_float32_cotangent():
    x, w, b = _data((4, 5), 3, seed=4)
    out, residuals = half.forward(_linear, [x, w, b], {"relu": True})
    g = np.random.default_rng(5).standard_normal(out.shape).astype(np.float32)
    vjp = half._HalfVJP(_linear)
    got = vjp.vjp(residuals, g, {"relu": True}, (0, 1, 2))
    x2, w_saved, has_bias, y, _ = residuals
    expected = _linear.vjp((half.widen(x2), half.widen(w_saved), has_bias, half.widen(y), x.shape), g,
                           {"relu": True}, (0, 1, 2))
    for u, v in zip(got, expected):
        _same_bits(u, half.narrow(v))
    native = vjp.vjp(residuals, g.astype(np.float16), {"relu": True}, (0, -1, 2))  # float16: native, masked
    assert native[1] is None and native[0].dtype == native[2].dtype == np.float16


def _parallel_path(kernel, a, *args):
    """``kernel`` on ``a`` padded to a size its parallel loop takes, cut back to ``a``'s size."""
    padded = np.concatenate([a, np.zeros(SERIAL_WORK, a.dtype)])
    out = kernel(padded, *args)
    return (out[0][: a.size], *out[1:]) if isinstance(out, tuple) else out[: a.size]


@pytest.mark.parametrize("size", [0, 1, 7, SERIAL_WORK - 1, SERIAL_WORK,
                                  SERIAL_WORK + 3])
def test_conversions_are_the_same_bits_on_both_sides_of_the_serial_threshold(size):
    bits = np.resize(np.arange(1 << 16, dtype=np.uint16), size)  # every half value, NaNs and infinities too
    widened = half_kernels.half_to_float32(bits)
    np.testing.assert_array_equal(widened.view(np.uint32), _parallel_path(half_kernels.half_to_float32, bits).view(np.uint32))
    finite = np.isfinite(bits.view(np.float16))
    np.testing.assert_array_equal(widened[finite], bits.view(np.float16)[finite].astype(np.float32))
    values = np.random.default_rng(size).standard_normal(size).astype(np.float32) * 3e4
    values[::97] = np.nan
    narrowed = half_kernels.float32_to_half(values)  # some overflow to inf, like numpy's cast
    np.testing.assert_array_equal(narrowed, _parallel_path(half_kernels.float32_to_half, values))
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(narrowed[1::97], values[1::97].astype(np.float16).view(np.uint16))
    scaled, nonfinite = half_kernels.half_to_float32_scaled(bits, np.float32(0.5))
    expected, expected_nonfinite = _parallel_path(half_kernels.half_to_float32_scaled, bits, np.float32(0.5))
    np.testing.assert_array_equal(scaled.view(np.uint32), expected.view(np.uint32))
    assert nonfinite == expected_nonfinite == int((~finite).sum())
