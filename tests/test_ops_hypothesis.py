"""Hypothesis feeds random shapes (sizes 0 and 1 included) and dtypes to the elementwise, binary and
dense ops: results match NumPy, and bad dtypes are clear TypeErrors, never a crash or garbage."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fnnet
import fnnet.ops as ops

FLOATS = st.sampled_from([np.float32, np.float64])
BAD_DTYPES = st.sampled_from([np.int8, np.int32, np.int64, np.uint8, np.bool_, np.complex64])
SETTINGS = settings(max_examples=40, deadline=None)

UNARY = [(ops.exp, np.exp), (ops.tanh, np.tanh), (ops.relu, lambda x: np.maximum(x, 0)), (ops.abs, np.abs),
         (ops.negative, np.negative), (ops.sigmoid, lambda x: 1 / (1 + np.exp(-x.astype(np.float64))))]
BINARY = [(ops.add, np.add), (ops.subtract, np.subtract), (ops.multiply, np.multiply),
          (ops.maximum, np.maximum), (ops.minimum, np.minimum)]


def _array(draw, shape, dtype):
    return draw(hnp.arrays(dtype, shape, elements=st.floats(-5, 5, width=32)))


@SETTINGS
@given(data=st.data(), shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5), dtype=FLOATS,
       which=st.integers(0, len(UNARY) - 1))
def test_unary_ops_any_shape(data, shape, dtype, which):
    op, ref = UNARY[which]
    x = _array(data.draw, shape, dtype)
    y = op(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    np.testing.assert_allclose(y, ref(x).astype(dtype), rtol=1e-5, atol=1e-6)


@SETTINGS
@given(data=st.data(), shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=0,
                                                               max_side=4),
       dtype=FLOATS, which=st.integers(0, len(BINARY) - 1))
def test_binary_ops_broadcast_like_numpy(data, shapes, dtype, which):
    op, ref = BINARY[which]
    a = _array(data.draw, shapes.input_shapes[0], dtype)
    b = _array(data.draw, shapes.input_shapes[1], dtype)
    y = op(a, b)
    expected = ref(a, b)
    assert y.shape == expected.shape and y.dtype == dtype
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-7)
    if 0 < y.size <= 64 and dtype == np.float64:  # and the gradient sums back over broadcast axes
        ga, gb = fnnet.grad(lambda u, v: ops.sum(op(u, v)), argnums=(0, 1))(a, b)
        assert ga.shape == a.shape and gb.shape == b.shape


@SETTINGS
@given(n=st.integers(0, 6), k=st.integers(1, 6), m=st.integers(1, 6), dtype=FLOATS, bias=st.booleans())
def test_linear_any_size(n, k, m, dtype, bias):
    rng = np.random.default_rng(n * 100 + k * 10 + m)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in ((n, k), (k, m), (m,)))
    y = ops.linear(x, w, b if bias else None)
    np.testing.assert_allclose(y, x @ w + (b if bias else 0), rtol=1e-5, atol=1e-6)


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), bad=BAD_DTYPES,
       which=st.integers(0, len(UNARY) - 1))
def test_bad_dtypes_are_clear_type_errors(shape, bad, which):
    op, _ = UNARY[which]
    x = np.zeros(shape, dtype=bad)
    with pytest.raises(TypeError, match=r"must be a float16, float32 or float64 array, got dtype"):
        op(x)
    with pytest.raises(TypeError, match="must be a float"):
        ops.linear(x.reshape(-1, shape[-1]), np.zeros((shape[-1], 2), np.float32))


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
def test_mixed_float_dtypes_are_rejected_not_promoted(shape):
    with pytest.raises(TypeError, match="never promotes silently"):
        ops.add(np.zeros(shape, np.float32), np.zeros(shape, np.float64))


def test_non_contiguous_inputs_are_read_correctly():
    x = np.arange(24, dtype=np.float64).reshape(4, 6)
    for view in (x[:, ::2], x.T, x[::-1], np.asfortranarray(x)):
        np.testing.assert_allclose(ops.exp(view), np.exp(view), rtol=1e-14)
        np.testing.assert_array_equal(ops.add(view, 1.0), view + 1.0)
        np.testing.assert_allclose(ops.linear(view, np.ones((view.shape[1], 2))), view @ np.ones((view.shape[1], 2)))
