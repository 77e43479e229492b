"""Reductions, indexing/joining and the softmax family: bad inputs (``pytest.raises(..., match=...)``) and
the behaviours the op table cannot express: ties of ``max`` against ``torch.amax``, bit-identical sums
whatever the thread count, empty reductions, float16 storage, the Tracer methods, and Hypothesis-drawn
shapes and axes."""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnnet
import fnnet.ops as ops
from fnnet import kernels as K

X = np.random.default_rng(0).standard_normal((3, 4))
X32 = X.astype(np.float32)


# ------------------------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize("op", [ops.sum, ops.mean, ops.max, ops.softmax, ops.log_softmax, ops.logsumexp,
                                lambda x: ops.getitem(x, 0), lambda x: ops.take(x, [0])])
@pytest.mark.parametrize("bad, match", [
    (np.arange(6).reshape(2, 3), "must be a float16, float32 or float64 array, got dtype int64"),
    (np.ones((2, 3), np.int32), "got dtype int32"),
    (np.ones((2, 3), bool), "got dtype bool"),
    (np.ones((2, 3), np.complex128), "got dtype complex128"),
    ([[1.0, 2.0]], "must be a numpy array"),
])
def test_single_input_ops_reject_wrong_dtypes(op, bad, match):
    with pytest.raises(TypeError, match=match):
        op(bad)


@pytest.mark.parametrize("op", [ops.sum, ops.mean, ops.max])
def test_reductions_reject_bad_axes(op):
    name = op.__name__
    with pytest.raises(ValueError, match=rf"{name}: axis 2 is out of range .* 2 dimension\(s\)"):
        op(X, axis=2)
    with pytest.raises(ValueError, match=rf"{name}: axis -3 is out of range"):
        op(X, axis=(0, -3))
    with pytest.raises(ValueError, match=rf"{name}: axis \(1, -1\) names the same axis twice"):
        op(X, axis=(1, -1))
    with pytest.raises(TypeError, match=rf"{name}: axis expected None, an int or a tuple of ints, got 1.0"):
        op(X, axis=1.0)
    with pytest.raises(TypeError, match=rf"{name}: axis expected .* got True"):
        op(X, axis=True)
    with pytest.raises(TypeError, match=rf"{name}: keepdims expected a bool, got 'yes'"):
        op(X, keepdims="yes")
    with pytest.raises(ValueError, match=rf"{name}: axis 0 is out of range for a 0-d array"):
        op(np.array(1.0), axis=0)


def test_max_over_an_empty_axis_is_an_error_but_sum_is_zero_and_mean_nan():
    x = np.zeros((3, 0))
    with pytest.raises(ValueError, match=r"max: cannot take the maximum over an empty axis \(x.shape=\(3, 0\)"):
        ops.max(x, axis=1)
    with pytest.raises(ValueError, match="max: cannot take the maximum over an empty axis"):
        ops.max(x)
    assert ops.max(x, axis=0).shape == (0,)
    np.testing.assert_array_equal(ops.sum(x, axis=1), np.zeros(3))
    assert ops.sum(x).shape == () and float(ops.sum(x)) == 0.0
    assert np.isnan(ops.mean(x, axis=1)).all()
    np.testing.assert_array_equal(fnnet.grad(lambda x: ops.sum(x))(x), np.zeros((3, 0)))


@pytest.mark.parametrize("op", [ops.softmax, ops.log_softmax, ops.logsumexp])
def test_softmax_family_rejects_bad_axes(op):
    name = op.__name__
    with pytest.raises(ValueError, match=rf"{name}: axis 2 is out of range"):
        op(X, axis=2)
    with pytest.raises(ValueError, match=rf"{name}: axis -3 is out of range"):
        op(X, axis=-3)
    with pytest.raises(TypeError, match=rf"{name}: axis must be an int, got \(0, 1\)"):
        op(X, axis=(0, 1))
    with pytest.raises(ValueError, match=rf"{name}: x must have at least 1 dimension, got a 0-d array"):
        op(np.array(1.0))


def test_logsumexp_rejects_non_bool_keepdims():
    with pytest.raises(TypeError, match="logsumexp: keepdims expected a bool, got 1"):
        ops.logsumexp(X, keepdims=1)


@pytest.mark.parametrize("index, error, match", [
    (3, IndexError, r"getitem: index 3 is out of range for axis 0 of size 3; valid: -3..2"),
    ((0, -5), IndexError, r"getitem: index -5 is out of range for axis 1 of size 4"),
    (np.array([0, 2, 7, 1]), IndexError,
     r"getitem: index array for axis 0 has value 7 at position \(2,\), out of range for size 3"),
    ((slice(None), np.array([[0, 1], [-5, 0]])), IndexError,
     r"getitem: index array for axis 1 has value -5 at position \(1, 0\)"),
    (np.array([0.0, 1.0]), TypeError, "getitem: index arrays must be integer or boolean, got dtype float64"),
    (1.0, TypeError, "getitem: index entries must be ints, .* got float"),
    ("a", TypeError, "getitem: index entries must be ints"),
    (True, TypeError, "getitem: a bare boolean index"),
    (np.ones((3, 3), bool), IndexError, r"getitem: boolean mask of shape \(3, 3\) does not match .* \(3, 4\)"),
    ((0, 0, 0), IndexError, r"getitem: too many indices: the index uses 3 axes but x has shape \(3, 4\)"),
    ((Ellipsis, 0, Ellipsis), IndexError, "getitem: an index can only have a single ellipsis"),
    (slice(None, None, 0), ValueError, "getitem: slice step must not be zero"),
    (slice(0.5, 2), TypeError, "getitem: slice start expected an int or None, got 0.5"),
    ((np.array([0, 1]), np.array([0, 1, 2])), IndexError, "getitem: shape mismatch"),
])
def test_getitem_rejects_bad_indices_before_running(index, error, match):
    with pytest.raises(error, match=match):
        ops.getitem(X, index)


def test_getitem_rejects_a_traced_index():
    def f(x):
        return ops.sum(ops.getitem(x, x))

    with pytest.raises(TypeError, match="getitem: index entries .* got a traced array"):
        fnnet.grad(f)(X)


def test_take_rejects_bad_arguments():
    with pytest.raises(ValueError, match="take: axis 2 is out of range for an array with 2 dimension"):
        ops.take(X, [0], axis=2)
    with pytest.raises(TypeError, match="take: axis expected an int, got None"):
        ops.take(X, [0], axis=None)
    with pytest.raises(TypeError, match="take: indices expected an int or an integer array"):
        ops.take(X, np.array([True, False, True]))
    with pytest.raises(TypeError, match="take: index arrays must be integer or boolean, got dtype float64"):
        ops.take(X, np.array([0.0]))
    with pytest.raises(IndexError, match=r"take: index array for axis 1 has value 4 at position \(1,\)"):
        ops.take(X, [0, 4], axis=1)


@pytest.mark.parametrize("op", [ops.concatenate, ops.stack])
def test_joins_reject_bad_inputs_naming_the_input(op):
    name = op.__name__
    with pytest.raises(TypeError, match=rf"{name}: xs\[2\] has dtype float64 but xs\[0\] has float32"):
        op([X32, X32, X])
    with pytest.raises(TypeError, match=rf"{name}: xs\[1\] must be a .*float64 array, got dtype int64"):
        op([X, np.ones((3, 4), np.int64)])
    with pytest.raises(TypeError, match=rf"{name}: xs\[1\] has dtype float32 but xs\[0\] has float16"):
        op([X.astype(np.float16), X32])
    with pytest.raises(ValueError, match=rf"{name}: xs expected at least one array"):
        op([])
    with pytest.raises(TypeError, match=rf"{name}: xs expected a list or tuple of arrays, got ndarray"):
        op(X)
    with pytest.raises(ValueError, match=rf"{name}: axis 5 is out of range"):
        op([X, X], axis=5)
    with pytest.raises(TypeError, match=rf"{name}: axis expected an int, got 0.0"):
        op([X, X], axis=0.0)


def test_concatenate_and_stack_name_the_input_with_a_wrong_shape():
    with pytest.raises(ValueError, match=r"concatenate: xs\[1\] has shape \(3, 5\), incompatible with xs\[0\] "
                                         r"of shape \(3, 4\): all dimensions except axis 0 must be equal"):
        ops.concatenate([X, np.ones((3, 5)), X])
    with pytest.raises(ValueError, match=r"concatenate: xs\[2\] has shape \(12,\)"):
        ops.concatenate([X, X, X.reshape(-1)])
    with pytest.raises(ValueError, match="concatenate: 0-d arrays cannot be concatenated"):
        ops.concatenate([np.array(1.0)])
    with pytest.raises(ValueError, match=r"stack: xs\[1\] has shape \(4, 3\) but xs\[0\] has shape \(3, 4\)"):
        ops.stack([X, X.T.copy()])


# ------------------------------------------------------------------------------------ behaviours


@pytest.mark.parametrize("name, op", [
    ("sum", lambda x: ops.sum(x, axis=0)), ("mean", lambda x: ops.mean(x, axis=(0, 1))),
    ("max", lambda x: ops.max(x, axis=-1, keepdims=True)), ("softmax", lambda x: ops.softmax(x, axis=0)),
    ("log_softmax", ops.log_softmax), ("logsumexp", ops.logsumexp), ("getitem", lambda x: x[1:, ::-1]),
    ("gather_rows", lambda x: x[[2, 0, 2]]), ("take", lambda x: ops.take(x, [3, 3], axis=1)),
    ("concatenate", lambda x: ops.concatenate([x, x * 2.0], axis=1)), ("stack", lambda x: ops.stack([x, x])),
])
def test_float16_is_storage_computed_in_float32(name, op):
    x16 = X.astype(np.float16)
    out16, vjp16 = fnnet.vjp(op, x16)
    out32, vjp32 = fnnet.vjp(op, x16.astype(np.float32))
    assert out16.dtype == np.float16, name
    np.testing.assert_array_equal(out16, out32.astype(np.float16))
    u = np.random.default_rng(1).standard_normal(out16.shape)
    (g16,), (g32,) = vjp16(u.astype(np.float16)), vjp32(u.astype(np.float32))
    assert g16.dtype == np.float16, name
    np.testing.assert_allclose(g16.astype(np.float32), g32, rtol=5e-3, atol=5e-3)



@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)])
def test_max_splits_the_gradient_of_ties_like_torch_amax(axis):
    torch = pytest.importorskip("torch")
    x = np.array([[1.0, 3.0, 3.0, -1.0], [2.0, 2.0, 2.0, 0.5], [3.0, 0.0, 3.0, 3.0]])
    u = np.random.default_rng(3).standard_normal(np.shape(np.max(x, axis=axis)))
    out, vjp_fn = fnnet.vjp(lambda x: ops.max(x, axis=axis), x)
    (g,) = vjp_fn(u)
    t = torch.tensor(x, requires_grad=True)
    dim = tuple(range(x.ndim)) if axis is None else axis
    expected = torch.amax(t, dim=dim)
    (tg,) = torch.autograd.grad(expected, [t], torch.tensor(u))
    np.testing.assert_allclose(out, expected.detach().numpy())
    np.testing.assert_allclose(g, tg.numpy(), rtol=1e-12)


def test_max_propagates_nan():
    x = np.array([[1.0, np.nan, 3.0], [0.0, 2.0, 1.0]])
    np.testing.assert_array_equal(ops.max(x, axis=1), np.max(x, axis=1))
    np.testing.assert_array_equal(ops.max(x), np.max(x))


def test_sum_of_10m_float32_is_accurate_and_independent_of_the_thread_count():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 Numba threads")
    x = np.random.default_rng(5).standard_normal(10_000_000).astype(np.float32) + np.float32(0.25)
    cols = x[: 4000 * 700].reshape(4000, 700)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = ops.sum(x), ops.mean(cols, axis=0), ops.sum(cols, axis=1)
        numba.set_num_threads(2)
        two = ops.sum(x), ops.mean(cols, axis=0), ops.sum(cols, axis=1)
    finally:
        numba.set_num_threads(before)
    for a, b in zip(one, two):
        assert a.dtype == np.float32 and a.tobytes() == b.tobytes()
    exact = np.sum(x, dtype=np.float64)
    assert abs(float(one[0]) - exact) <= abs(exact) * 2.0**-23  # within float32 rounding of the true sum
    np.testing.assert_allclose(one[1], cols.mean(axis=0, dtype=np.float64), rtol=2e-7)


def test_reduction_kernel_chunking_covers_large_inner_and_many_chunks():
    rng = np.random.default_rng(2)
    for shape in [(2, 40, 2500), (1, 9000, 3), (3, 17, 1)]:
        x = rng.standard_normal(shape)
        np.testing.assert_allclose(K.sum_3d(x, 1.0), x.sum(axis=1), rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(K.max_3d(x), x.max(axis=1))


def test_scatter_add_accumulates_repeats_in_the_backward():
    x = np.arange(12.0).reshape(4, 3)
    idx = np.array([3, 1, 3, 3, 0])
    g = fnnet.grad(lambda x: ops.sum(ops.getitem(x, idx) * 2.0))(x)
    expected = np.zeros_like(x)
    np.add.at(expected, idx, 2.0)
    np.testing.assert_array_equal(g, expected)
    g = fnnet.grad(lambda x: ops.sum(ops.getitem(x, (idx, np.array([0, 0, 0, 2, 0])))))(x)
    expected = np.zeros_like(x)
    np.add.at(expected, (idx, np.array([0, 0, 0, 2, 0])), 1.0)
    np.testing.assert_array_equal(g, expected)


def test_tracer_methods_index_and_reduce():
    x = np.random.default_rng(4).standard_normal((3, 4))

    def with_methods(x):
        return (x[1:, ::-1] * 2.0).sum(axis=1).mean(keepdims=True).sum() + x.max(axis=0).sum() + x[[0, 0]].sum()

    def with_ops(x):
        y = ops.mean(ops.sum(ops.getitem(x, (slice(1, None), slice(None, None, -1))) * 2.0, axis=1), keepdims=True)
        return ops.sum(y) + ops.sum(ops.max(x, axis=0)) + ops.sum(ops.getitem(x, [0, 0]))

    v1, g1 = fnnet.value_and_grad(with_methods)(x)
    v2, g2 = fnnet.value_and_grad(with_ops)(x)
    np.testing.assert_allclose(v1, v2)
    np.testing.assert_allclose(g1, g2)
    rows = fnnet.grad(lambda x: sum(r.sum() for r in x))(x)  # iteration goes through __getitem__
    np.testing.assert_array_equal(rows, np.ones_like(x))


def test_softmax_family_is_finite_for_extreme_logits_in_float32():
    x = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -999.0]], np.float32)
    for op in (ops.softmax, ops.log_softmax, ops.logsumexp):
        out, vjp_fn = fnnet.vjp(op, x)
        assert out.dtype == np.float32 and np.isfinite(out).all(), op.__name__
        assert np.isfinite(vjp_fn(np.ones_like(out))[0]).all(), op.__name__
    np.testing.assert_allclose(ops.softmax(x)[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(ops.logsumexp(x), [1000.0, -999.0 + np.log1p(2 * np.exp(-1.0))], rtol=1e-6)


def test_logsumexp_edge_rows():
    x = np.array([[np.inf, 1.0], [-np.inf, -np.inf]])
    np.testing.assert_array_equal(ops.logsumexp(x), [np.inf, -np.inf])
    np.testing.assert_array_equal(ops.logsumexp(np.zeros((2, 0))), [-np.inf, -np.inf])


def test_zero_d_sum_and_getitem():
    x = np.array(1.5)
    assert ops.sum(x).shape == () and float(ops.sum(x)) == 1.5
    assert fnnet.grad(lambda x: ops.sum(x) * 3.0)(x) == 3.0
    assert float(fnnet.grad(lambda x: ops.sum(x[None]))(x)) == 1.0


# --------------------------------------------------------------------------- Hypothesis: shapes, axes

_shapes = st.lists(st.integers(0, 4), min_size=1, max_size=4).map(tuple)


@st.composite
def _shape_and_axes(draw):
    shape = draw(_shapes)
    ndim = len(shape)
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        axis = None
    elif kind == "int":
        axis = draw(st.integers(-ndim, ndim - 1))
    else:
        axis = tuple(draw(st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim)))
        axis = tuple(a - ndim if draw(st.booleans()) else a for a in axis)
    return shape, axis, draw(st.booleans())


@settings(max_examples=60, deadline=None)
@given(_shape_and_axes(), st.integers(0, 2**16))
def test_hypothesis_sum_and_mean_match_numpy(shape_axes, seed):
    shape, axis, keepdims = shape_axes
    x = np.random.default_rng(seed).standard_normal(shape)
    np.testing.assert_allclose(ops.sum(x, axis, keepdims), np.sum(x, axis=axis, keepdims=keepdims), atol=1e-12)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.mean(x, axis=axis, keepdims=keepdims) if x.size else np.full(
            np.sum(x, axis=axis, keepdims=keepdims).shape, np.nan)
    np.testing.assert_allclose(ops.mean(x, axis, keepdims), expected, atol=1e-12, equal_nan=True)
    g = fnnet.grad(lambda x: ops.sum(ops.sum(x, axis, keepdims) * 2.0))(x)
    np.testing.assert_array_equal(g, np.full(shape, 2.0))


@settings(max_examples=40, deadline=None)
@given(_shapes, st.data())
def test_hypothesis_softmax_matches_numpy(shape, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = np.random.default_rng(data.draw(st.integers(0, 2**16))).standard_normal(shape) * 5
    y = ops.softmax(x, axis=axis)
    assert y.shape == x.shape
    if x.size:
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        np.testing.assert_allclose(y, e / e.sum(axis=axis, keepdims=True), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(np.sum(y, axis=axis), 1.0, rtol=1e-12)


# ------------------------------------------------------------------ 0-d results, numbers, shape arguments


def test_integer_index_gives_a_0d_array_that_every_op_accepts():
    x = np.arange(1.0, 7.0).reshape(2, 3)
    y = ops.getitem(x, (1, 2))
    assert type(y) is np.ndarray and y.shape == () and y == x[1, 2]
    g = fnnet.grad(lambda x: x[1] * 2.0)(np.arange(3.0))
    np.testing.assert_array_equal(g, [0.0, 2.0, 0.0])
    f = lambda x: ops.exp(x[1, 2]) * x[0, 1] + ops.sum(x[1, 2] * x[1]) + x[1, 2]  # noqa: E731
    expected = np.zeros_like(x)
    expected[1, 2] = np.exp(x[1, 2]) * x[0, 1] + x[1].sum() + 1.0
    expected[0, 1] = np.exp(x[1, 2])
    expected[1] += x[1, 2]
    np.testing.assert_allclose(fnnet.grad(f)(x), expected, rtol=1e-12)
    np.testing.assert_allclose(f(x), np.exp(x[1, 2]) * x[0, 1] + np.sum(x[1, 2] * x[1]) + x[1, 2], rtol=1e-12)


def test_numpy_scalars_and_0d_arrays_are_accepted_where_python_floats_are():
    x = X32
    two = np.float32(2.0)
    assert ops.multiply(x, two).dtype == np.float32 and ops.multiply(x, np.float64(2.0)).dtype == np.float32
    np.testing.assert_array_equal(ops.multiply(x, two), x * 2)
    np.testing.assert_array_equal(ops.subtract(np.array(1.0, np.float32), x), 1 - x)
    e = ops.exp(np.float32(1.0))
    assert type(e) is np.ndarray and e.shape == () and e.dtype == np.float32
    np.testing.assert_allclose(e, np.exp(np.float32(1.0)), rtol=1e-6)
    np.testing.assert_array_equal(ops.clip(x, np.float32(-0.5), np.array(0.5)), np.clip(x, -0.5, 0.5))
    np.testing.assert_array_equal(ops.leaky_relu(x, np.array(0.1)), np.where(x > 0, x, np.float32(0.1) * x))
    np.testing.assert_array_equal(ops.elu(x, np.float64(1.0)), ops.elu(x, 1.0))
    with pytest.raises(TypeError, match=r"clip: lo expected a number, got 'a'"):
        ops.clip(x, "a", 1.0)
    g = fnnet.grad(lambda x: ops.sum(ops.multiply(x, np.float32(3.0))) * np.float32(2.0))(x)
    np.testing.assert_array_equal(g, np.full_like(x, 6.0))
    assert type(fnnet.grad(lambda s: s * 3.0)(np.float32(2.0))) is np.float32


def test_transpose_rejects_axes_that_are_not_a_permutation():
    with pytest.raises(ValueError, match=r"transpose: axis 5 is out of range for shape \(3, 4\)"):
        ops.transpose(X, (5, 0))
    with pytest.raises(ValueError, match=r"transpose: axis -3 is out of range"):
        ops.transpose(X, (-3, 0))
    with pytest.raises(ValueError, match=r"transpose: axes \(0, 0\) are not a permutation"):
        ops.transpose(X, (0, 0))
    with pytest.raises(ValueError, match=r"transpose: axes \(0,\) are not a permutation"):
        ops.transpose(X, (0,))
    with pytest.raises(TypeError, match=r"transpose: axes expected None or a tuple of ints .* got \(1.0, 0\)"):
        ops.transpose(X, (1.0, 0))
    np.testing.assert_array_equal(ops.transpose(X, (-1, 0)), X.T)


@pytest.mark.parametrize("shape", [(2.0, 6), 12.0, (None, 6), "abc", (float("nan"),), (True, 12)])
def test_reshape_rejects_shapes_that_are_not_ints(shape):
    with pytest.raises(TypeError, match=r"reshape: shape expected an int or a tuple of ints"):
        ops.reshape(X, shape)


@pytest.mark.parametrize("op", [lambda x: ops.reshape(x, (-1,)), ops.transpose])
@pytest.mark.parametrize("bad", [np.ones((2, 3), np.int64), np.ones((2, 3), object), np.ones((2, 3), np.complex128),
                                 np.ones((2, 3), bool)])
def test_shape_ops_reject_non_float_arrays(op, bad):
    with pytest.raises(TypeError, match=r"(reshape|transpose): x must be a float16, float32 or float64 array"):
        op(bad)


@pytest.mark.parametrize("lo, hi", [(float("nan"), 0.5), (0.0, float("nan")), (np.float32("nan"), np.nan)])
def test_clip_rejects_nan_bounds(lo, hi):
    with pytest.raises(ValueError, match=r"clip: lo and hi must not be NaN.*np\.inf"):
        ops.clip(X, lo, hi)
    np.testing.assert_array_equal(ops.clip(X, -np.inf, 0.5), np.minimum(X, 0.5))


def test_leaked_tracer_errors_name_the_public_op():
    box = {}
    fnnet.grad(lambda x: ops.sum(box.setdefault("t", x)))(np.ones((3, 2)))
    leaked = box["t"]
    for call, name in [(lambda: leaked[[0, 0]], "getitem"), (lambda: ops.take(leaked, [0, 1]), "take"),
                       (lambda: ops.matmul(leaked[0], np.ones(2)), "getitem"),
                       (lambda: ops.matmul(np.ones(3), leaked), "matmul"),
                       (lambda: ops.embedding(np.array([0, 2]), leaked), "embedding"),
                       (lambda: ops.concatenate([np.ones((1, 2)), leaked]), "concatenate"),
                       (lambda: leaked * 2.0, "multiply")]:
        with pytest.raises(fnnet.autodiff.UnexpectedTracerError, match=rf"^{name}: got a traced value from a grad call that has already returned"):
            call()
