"""float16 kernels that read and write half bits directly (``fnnet.autodiff.half.def_native``): bitwise the
widen / float32 kernel / narrow path they replace.  ``linear`` over odd shapes, bias and ReLU on and off, each
subset of wanted cotangents, strided and batched inputs; max pooling over its geometries (the 2x2 fast path,
overlapping, dilated, ceil-mode and empty windows, 1-D) with NaN, infinities, ties, signed zeros and
denormals, on both sides of the serial threshold; and the conversion kernels' serial path for small arrays."""

import numpy as np
import pytest

import fnnet
from fnnet import ops
from fnnet.autodiff import half
from fnnet.kernels import half as half_kernels
from fnnet.kernels._jit import SERIAL_STREAM, SERIAL_WORK
from fnnet.ops.linalg import _linear
from fnnet.ops.pool import _max_pool1d, _max_pool2d
from tests.half_bits import bits_of, same_bits

SHAPES = [((128, 784), 256), ((5, 7), 3), ((1, 1), 1), ((0, 4), 3), ((2, 1, 5), 1), ((1030, 33), 17),
          ((300, 65), 1), ((2, 3, 9), 4),
          ((520, 1030), 520),  # the weight and the input over SERIAL_STREAM elements: widened in parallel
          ((1100, 40), 30), ((300, 200), 40)]  # large row blocks; row blocks (its input gradient: column blocks)


def _widening_path(monkeypatch, prim=_linear):
    """Run ``prim`` on float16 as every primitive without a native rule does (for the reference)."""
    monkeypatch.delitem(half._native, prim)


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
        same_bits(ours[0], theirs[0])
        assert len(ours[1]) == len(theirs[1]) == len(wrt)
        for u, v in zip(ours[1], theirs[1]):
            same_bits(u, v)


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
        same_bits(ours[0], theirs[0])
        for u, v in zip(ours[1], theirs[1]):
            same_bits(u, v)


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
        same_bits(u, half.narrow(v))
    native = vjp.vjp(residuals, g.astype(np.float16), {"relu": True}, (0, -1, 2))  # float16: native, masked
    assert native[1] is None and native[0].dtype == native[2].dtype == np.float16


def _parallel_path(kernel, a, *args):
    """``kernel`` on ``a`` padded to a size its parallel loop takes, cut back to ``a``'s size."""
    padded = np.concatenate([a, np.zeros(SERIAL_STREAM, a.dtype)])
    out = kernel(padded, *args)
    return (out[0][: a.size], *out[1:]) if isinstance(out, tuple) else out[: a.size]


@pytest.mark.parametrize("size", [0, 1, 7, SERIAL_STREAM - 1, SERIAL_STREAM,
                                  SERIAL_STREAM + 3])
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


# ------------------------------------------------------------------------------------------ max pooling

#: (x shape, kernel, stride, padding, dilation, ceil_mode); a 3-D shape is max_pool1d.
POOLS = [
    ((2, 3, 8, 6), 2, None, 0, 1, False),  # the 2x2 fast path
    ((2, 3, 7, 5), 2, 2, 0, 1, False),  # odd sizes, still the fast path (the last row/column is dropped)
    ((2, 3, 7, 5), 2, 2, 0, 1, True),  # ceil mode: a partial last window, the general loop
    ((2, 3, 7, 6), 3, 1, 1, 1, False),  # overlapping windows: cotangents summed in float32
    ((1, 2, 9, 9), 3, 2, 1, 2, True),  # dilation and ceil mode
    ((2, 2, 8, 7), (2, 3), (2, 1), (1, 1), (2, 1), False),
    ((1, 1, 1, 1), 2, 1, 1, 2, False),  # both taps in the padding: -inf, index -1
    ((2, 3, 11), 3, 2, 1, 1, True),  # max_pool1d
    ((16, 16, 32, 32), 2, None, 0, 1, False),  # parallel sizes (N*C*oh*ow*kh*kw >= SERIAL_WORK)
    ((4, 8, 24, 24), 3, 1, 1, 1, False),
]
#: NaNs (a signalling one, payloads, a sign), +-inf, -0 and +0, denormals, +-the largest half.
SPECIAL_HALVES = np.array([0x7E00, 0x7C01, 0xFE37, 0x7C00, 0xFC00, 0x8000, 0x0000, 0x0001, 0x8001, 0x03FF,
                           0x7BFF, 0xFBFF], dtype=np.uint16).view(np.float16)


def _hostile_halves(shape, seed):
    """Few distinct values (so windows tie), normals, and the special halves sprinkled over 1 in 8."""
    rng = np.random.default_rng(seed)
    values = np.where(rng.random(shape) < 0.5, rng.integers(-2, 3, shape) / 2, rng.standard_normal(shape))
    values = values.astype(np.float16)
    special = rng.random(shape) < 0.125
    values[special] = rng.choice(SPECIAL_HALVES, int(special.sum()))
    return values


def _pool_call(x_shape, k, s, p, d, ceil):
    pool = ops.max_pool1d if len(x_shape) == 3 else ops.max_pool2d
    return lambda x: pool(x, k, s, p, d, ceil)


def _spy_native(monkeypatch, prim):
    """Note each call of ``prim``'s native forward and VJP: returns the list of ``(rule, params)``."""
    fwd, vjp = half._native[prim]
    calls = []

    def spy_fwd(*values, **params):
        calls.append(("fwd", params))
        return fwd(*values, **params)

    def spy_vjp(residuals, g, **params):
        calls.append(("vjp", params))
        return vjp(residuals, g, **params)

    monkeypatch.setitem(half._native, prim, (spy_fwd, spy_vjp))
    return calls


def _pool_results(pool, x, g):
    """Output, and the float16 gradients of ``sum(y * probe)`` (through ``grad``) and of the hostile
    cotangent ``g`` (through ``vjp``)."""
    probe = np.random.default_rng(1).standard_normal(g.shape).astype(np.float16)
    y, vjp_fn = fnnet.vjp(pool, x)
    (from_g,) = vjp_fn(g)
    from_probe = fnnet.grad(lambda x: ops.sum(ops.multiply(pool(x), probe)))(x)
    return y, from_g, from_probe


@pytest.mark.parametrize("geometry", POOLS, ids=["x".join(map(str, p[0])) + f"-k{p[1]}-s{p[2]}-p{p[3]}-d{p[4]}"
                                                 + ("-ceil" if p[5] else "") for p in POOLS])
def test_native_max_pool_is_bitwise_the_widening_path(monkeypatch, geometry):
    prim = _max_pool1d if len(geometry[0]) == 3 else _max_pool2d
    pool = _pool_call(*geometry)
    x = _hostile_halves(geometry[0], seed=3)
    g = _hostile_halves(pool(x).shape, seed=4)
    calls = _spy_native(monkeypatch, prim)
    ours = _pool_results(pool, x, g)
    assert [rule for rule, _ in calls] == ["fwd", "vjp", "fwd", "vjp"]
    params = calls[0][1]
    ours_saved = half.forward(prim, [x], params)
    with monkeypatch.context() as m:
        _widening_path(m, prim)
        theirs = _pool_results(pool, x, g)
        theirs_saved = half.forward(prim, [x], params)
    for u, v in zip(ours, theirs):
        same_bits(u, v)
    same_bits(ours_saved[0], theirs_saved[0])
    (idx, h, w), (expected_idx, expected_h, expected_w) = ours_saved[1], theirs_saved[1]
    assert idx.dtype == expected_idx.dtype == np.int32 and (h, w) == (expected_h, expected_w)
    np.testing.assert_array_equal(idx, expected_idx)


def test_native_max_pool_gives_an_empty_window_minus_inf_and_no_gradient():
    pool = _pool_call((1, 1, 1, 1), 2, 1, 1, 2, False)  # taps at -1 and 1: both outside the one pixel
    x = np.full((1, 1, 1, 1), np.nan, np.float16)
    y, vjp_fn = fnnet.vjp(pool, x)
    (gx,) = vjp_fn(np.ones(y.shape, np.float16))
    assert y.dtype == gx.dtype == np.float16
    assert y.item() == -np.inf and gx.view(np.uint16).item() == 0  # +0.0


@pytest.mark.parametrize("kernel", [1, 2], ids=["general-loop", "2x2-loop"])
def test_native_max_pool_passes_every_half_through_as_the_widening_path_does(monkeypatch, kernel):
    bits = np.arange(1 << 16, dtype=np.uint16)  # signalling NaNs come back quiet, as from the conversions
    x = np.full((1, 1, kernel, kernel << 16), -np.inf, np.float16)
    x[0, 0, 0, ::kernel] = bits.view(np.float16)  # each window's first tap; the -inf taps never win
    ours = ops.max_pool2d(x, kernel)
    with monkeypatch.context() as m:
        _widening_path(m, _max_pool2d)
        theirs = ops.max_pool2d(x, kernel)
    same_bits(ours, theirs)
    np.testing.assert_array_equal(bits_of(ours), half_kernels.float32_to_half(half_kernels.half_to_float32(bits)))


def test_native_max_pool_backward_sums_special_cotangents_as_the_widening_path_does(monkeypatch):
    pairs = np.array([(a, b) for a in SPECIAL_HALVES.view(np.uint16) for b in SPECIAL_HALVES.view(np.uint16)])
    x = np.zeros((len(pairs), 1, 3, 3), np.float16)
    x[:, :, 1, 1] = 1.0  # all four 2x2 windows (stride 1) route their cotangent to the centre
    g = pairs[:, [0, 1, 1, 0]].astype(np.uint16).view(np.float16).reshape(-1, 1, 2, 2)  # NaN + NaN, inf - inf...
    results = []
    for native in (True, False):
        with monkeypatch.context() as m:
            if not native:
                _widening_path(m, _max_pool2d)
            _, vjp_fn = fnnet.vjp(lambda x: ops.max_pool2d(x, 2, 1), x)
            results.append(vjp_fn(g)[0])
    same_bits(*results)
