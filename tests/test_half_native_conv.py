"""float16 convolution kernels that read and write half bits (``fnnet.kernels.conv_half``, registered with
``fnnet.autodiff.half.def_native``): bitwise the widen / float32 kernel / narrow path they replace, for the
output and the gradients of x, weight and bias, over the geometries the kernels special-case (valid, padded,
strided, dilated, grouped, depthwise, the direct 1x1 path, a batch of 1, more samples than weight-gradient
chunks), with and without the fused ReLU, with NaN, infinities, zeros and overflow; for conv1d; and for a
Conv2D -> ReLU in a float16 Sequential."""

import numpy as np
import pytest

import fnnet
import fnnet.layers as L
from fnnet import ops
from fnnet.autodiff import half
from fnnet.ops.conv import _conv1d, _conv2d
from fnnet.precision import cast
from tests.half_bits import same_bits

GEOMETRIES = {  # name: (x shape, weight shape, conv2d keyword arguments)
    "3x3-valid": ((2, 3, 7, 6), (4, 3, 3, 3), {}),
    "3x3-pad1-stride2": ((3, 4, 9, 8), (5, 4, 3, 3), {"stride": 2, "padding": 1}),
    "dilation2": ((2, 2, 9, 10), (3, 2, 3, 3), {"dilation": 2, "padding": 2}),
    "groups2": ((2, 4, 7, 7), (6, 2, 3, 3), {"groups": 2, "padding": 1}),
    "depthwise": ((2, 3, 6, 5), (3, 1, 3, 3), {"groups": 3, "padding": 1}),
    "1x1-direct": ((3, 5, 6, 7), (4, 5, 1, 1), {}),
    "1x1-stride2": ((2, 3, 5, 5), (2, 3, 1, 1), {"stride": 2}),
    "batch1": ((1, 3, 8, 8), (4, 3, 3, 3), {"padding": 1}),
    "odd": ((5, 3, 11, 13), (7, 3, 5, 3), {"stride": (2, 3), "padding": (2, 1)}),
    "same-even-kernel": ((2, 2, 7, 9), (3, 2, 2, 4), {"padding": "same"}),
    "37-samples-wide": ((37, 2, 12, 31), (3, 2, 3, 3), {"padding": 1}),  # 16 uneven chunks, long bias sums
}
WRT = {"all": ("x", "w", "b"), "params": ("w", "b"), "x": ("x",)}


def _count_native_calls(monkeypatch, prim):
    """Count the calls of ``prim``'s native forward and backward (so a test knows it compared them)."""
    fwd, vjp = half._native[prim]
    calls = {"fwd": 0, "vjp": 0}

    def counted_fwd(*args, **kwargs):
        calls["fwd"] += 1
        return fwd(*args, **kwargs)

    def counted_vjp(*args, **kwargs):
        calls["vjp"] += 1
        return vjp(*args, **kwargs)

    monkeypatch.setitem(half._native, prim, (counted_fwd, counted_vjp))
    return calls


def _native_and_widening(monkeypatch, prim, compute):
    """``compute()`` with ``prim``'s native float16 rule, then on the widening path every primitive without
    one takes; asserts the first run used the native forward and backward."""
    with monkeypatch.context() as m:
        calls = _count_native_calls(m, prim)
        ours = compute()
        assert calls["fwd"] > 0 and calls["vjp"] > 0, calls
    with monkeypatch.context() as m:
        m.delitem(half._native, prim)
        theirs = compute()
    return ours, theirs


def _conv_and_grads(conv, args, probe, wrt, **kwargs):
    """``conv``'s float16 output and the float16 gradients of ``sum(y * probe)`` w.r.t. ``wrt``."""

    def f(*traced):
        values = {**args, **dict(zip(wrt, traced))}
        return ops.sum(ops.multiply(conv(values["x"], values["w"], values["b"], **kwargs), probe))

    y = conv(args["x"], args["w"], args["b"], **kwargs)
    return (y, *fnnet.grad(f, argnums=tuple(range(len(wrt))))(*(args[k] for k in wrt)))


def _data(x_shape, w_shape, y_shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float16)
    w = (rng.standard_normal(w_shape) * 0.4).astype(np.float16)
    b = rng.standard_normal(w_shape[0]).astype(np.float16)
    probe = rng.standard_normal(y_shape).astype(np.float16)  # the float16 cotangent reaching the conv's VJP
    return {"x": x, "w": w, "b": b}, probe


def _check_conv2d(monkeypatch, args, probe, wrt, **kwargs):
    ours, theirs = _native_and_widening(monkeypatch, _conv2d,
                                        lambda: _conv_and_grads(ops.conv2d, args, probe, wrt, **kwargs))
    assert len(ours) == len(theirs) == 1 + len(wrt)
    for u, v in zip(ours, theirs):
        same_bits(u, v)


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
@pytest.mark.parametrize("activation", [None, "relu"], ids=["plain", "relu"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_native_conv2d_is_bitwise_the_widening_path(monkeypatch, geometry, activation, bias):
    x_shape, w_shape, kwargs = GEOMETRIES[geometry]
    kwargs = {**kwargs, "activation": activation}
    y_shape = ops.conv2d_output_shape(x_shape, w_shape, **{k: v for k, v in kwargs.items() if k != "activation"})
    args, probe = _data(x_shape, w_shape, y_shape)
    if not bias:
        args["b"] = None
    for name, wrt in WRT.items():
        wrt = tuple(k for k in wrt if bias or k != "b")
        _check_conv2d(monkeypatch, args, probe, wrt, **kwargs)


@pytest.mark.parametrize("geometry", ["3x3-pad1-stride2", "1x1-direct", "groups2"])
def test_native_conv2d_special_values(monkeypatch, geometry):
    x_shape, w_shape, kwargs = GEOMETRIES[geometry]
    y_shape = ops.conv2d_output_shape(x_shape, w_shape, **kwargs)
    args, probe = _data(x_shape, w_shape, y_shape, seed=3)
    x, w = args["x"], args["w"]
    x[0, 0, :2, :3] = [[np.nan, np.inf, -np.inf], [0.0, -0.0, 60000.0]]  # 60000 * weights overflows float16
    x[-1, -1] = 0.0
    w[1] = 0.0
    w[0, 0, 0, 0] = 30000.0
    args["b"][2] = -np.inf
    probe.reshape(-1)[::17] = 0.0
    probe.reshape(-1)[5::41] = np.nan
    probe.reshape(-1)[7::53] = np.inf
    for activation in (None, "relu"):
        with np.errstate(all="ignore"):
            _check_conv2d(monkeypatch, args, probe, WRT["all"], **kwargs, activation=activation)


def test_native_conv2d_reads_strided_inputs(monkeypatch):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 6, 9, 14)).astype(np.float16)[:, ::2, :, ::2]
    w = (rng.standard_normal((5, 3, 3, 6)) * 0.4).astype(np.float16)[:, :, :, ::2]
    b = rng.standard_normal(10).astype(np.float16)[::2]
    probe = rng.standard_normal((3, 5, 5, 4)).astype(np.float16)
    _check_conv2d(monkeypatch, {"x": x, "w": w, "b": b}, probe, WRT["all"], stride=2, padding=1, activation="relu")


def test_native_conv1d_is_bitwise_the_widening_path(monkeypatch):
    args, probe = _data((4, 6, 17), (4, 3, 3), (4, 4, 9))
    kwargs = {"stride": 2, "padding": 1, "groups": 2}
    for wrt in WRT.values():
        ours, theirs = _native_and_widening(monkeypatch, _conv1d,
                                            lambda: _conv_and_grads(ops.conv1d, args, probe, wrt, **kwargs))
        for u, v in zip(ours, theirs):
            same_bits(u, v)


def test_native_residuals_are_those_of_the_widening_path_and_either_backward_runs_on_them(monkeypatch):
    args, _ = _data((3, 4, 8, 8), (6, 2, 3, 3), (3, 6, 4, 4), seed=5)
    params = {"stride": (2, 2), "pad_top": 1, "pad_left": 1, "dilation": (1, 1), "out_hw": (4, 4), "relu": True}
    values = [args["x"], args["w"], args["b"]]
    out, residuals = half.forward(_conv2d, values, params)
    with monkeypatch.context() as m:
        m.delitem(half._native, _conv2d)
        wide_out, wide_residuals = half.forward(_conv2d, values, params)
    same_bits(out, wide_out)
    assert len(residuals) == len(wide_residuals) == 5
    for r, s in zip(residuals, wide_residuals):
        if type(s) is np.ndarray:
            same_bits(r, s)
        else:
            assert r == s
    g = np.random.default_rng(6).standard_normal(out.shape).astype(np.float16)
    vjp = half._HalfVJP(_conv2d)
    native = vjp.vjp(residuals, g, params, (0, 1, 2))
    widened = vjp.vjp(residuals, g.astype(np.float32), params, (0, 1, 2))  # a float32 cotangent: widening VJP
    for u, v in zip(native, widened):
        same_bits(u, v)
    without_x = vjp.vjp(residuals, g, params, (-1, 1, 2))
    assert without_x[0] is None
    same_bits(without_x[1], native[1])
    same_bits(without_x[2], native[2])


def test_float16_sequential_conv_relu_is_bitwise_the_widening_path(monkeypatch):
    model = L.Sequential([L.Conv2D(6, 3, padding=1), L.ReLU(), L.Conv2D(4, 3, stride=2, groups=2), L.ReLU(),
                          L.Conv2D(3, 1), L.Flatten(), L.Linear(5)])
    params = cast(model.init(fnnet.random.key(0), (None, 2, 9, 9)), np.float16)
    x = cast(np.random.default_rng(8).standard_normal((4, 2, 9, 9)).astype(np.float32), np.float16)
    labels = np.arange(4) % 5

    def compute():
        def loss(p, xv):
            return fnnet.losses.softmax_cross_entropy(model.apply(p, xv), labels)

        gp, gx = fnnet.grad(loss, argnums=(0, 1))(params, x)
        return (model.apply(params, x), gx, *fnnet.tree.leaves(gp))

    ours, theirs = _native_and_widening(monkeypatch, _conv2d, compute)
    assert len(ours) == len(theirs) == 2 + len(fnnet.tree.leaves(params))
    for u, v in zip(ours, theirs):
        same_bits(u, v)
