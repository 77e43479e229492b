"""Layer ops (conv2d, pooling, batch/layer norm, embedding, dropout): bad inputs, shape inference,
PyTorch-matching details (ties, running statistics) and determinism across thread counts."""

import numba
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fnnet
import fnnet.ops as ops
from fnnet.autodiff import Tracer, vjp

rng = np.random.default_rng(0)


def randn(*shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


X = randn(2, 3, 5, 5)
W = randn(4, 3, 3, 3)


# ------------------------------------------------------------------------------------------ conv2d


@pytest.mark.parametrize("kwargs,match", [
    (dict(x=randn(2, 3, 2, 2), weight=W), r"kernel \(3x3.*larger than the padded input \(2x2"),
    (dict(x=randn(2, 3, 5, 5), weight=randn(4, 3, 3, 3), dilation=3), r"extent 7x7.*5x5"),
    (dict(x=randn(2, 5, 5, 5), weight=W), r"x.shape=\(2, 5, 5, 5\), weight.shape=\(4, 3, 3, 3\)"),
    (dict(x=randn(2, 4, 5, 5), weight=randn(4, 4, 3, 3), groups=2), r"in_ch/groups = 4/2 = 2"),
    (dict(x=randn(2, 3, 5, 5), weight=randn(4, 1, 3, 3), groups=2), r"in_channels 3 .* not divisible by groups=2"),
    (dict(x=randn(2, 4, 5, 5), weight=randn(3, 2, 3, 3), groups=2), r"out_channels 3 .* not divisible by groups=2"),
    (dict(x=X, weight=W, stride=0), r"stride must be positive, got 0"),
    (dict(x=X, weight=W, stride=(1, -1)), r"stride must be positive"),
    (dict(x=X, weight=W, dilation=0), r"dilation must be positive"),
    (dict(x=X, weight=W, padding=-1), r"padding must be non-negative"),
    (dict(x=X, weight=W, padding="same", stride=2), r"padding='same' needs stride 1"),
    (dict(x=X, weight=W, padding="full"), r"'same' or 'valid', got 'full'"),
    (dict(x=X, weight=W, groups=0), r"groups must be positive"),
    (dict(x=X[0], weight=W), r"4 dimensions \(N, C, H, W\).*x\[None\]"),
    (dict(x=X, weight=W[0]), r"weight must have 4 dimensions"),
    (dict(x=X, weight=W, bias=randn(3)), r"bias must have shape \(4,\)"),
])
def test_conv2d_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ops.conv2d(**kwargs)


@pytest.mark.parametrize("kwargs,match", [
    (dict(x=X.astype(np.float32), weight=W), r"x is float32 but weight is float64"),
    (dict(x=X.astype(np.int64), weight=W), r"x must be a float.*float64 array, got dtype int64"),
    (dict(x=X, weight=W, stride=1.5), r"stride expected an int or a pair"),
    (dict(x=X, weight=W, groups=1.0), r"groups expected an int"),
])
def test_conv2d_type_errors(kwargs, match):
    with pytest.raises(TypeError, match=match):
        ops.conv2d(**kwargs)


def test_conv_output_size():
    assert ops.conv_output_size(28, 3, 1, 1) == 28
    assert ops.conv_output_size(7, 3, 2, 1) == 4
    assert ops.conv_output_size(7, 3, 1, 0, dilation=2) == 3
    assert ops.conv_output_size(5, 2, padding="same") == 5
    assert ops.conv_output_size(5, 2, padding=(0, 1)) == 5
    assert ops.conv_output_size(1, 1) == 1
    with pytest.raises(ValueError, match=r"extent 5\) is larger than the padded input \(2 plus padding 1\+1 = 4\)"):
        ops.conv_output_size(2, 3, 1, 1, dilation=2)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        ops.conv_output_size(5, 3, 0)


def test_conv2d_output_shape_accepts_unknown_batch():
    assert ops.conv2d_output_shape((None, 3, 8, 8), (16, 3, 3, 3), stride=2, padding=1) == (None, 16, 4, 4)
    assert ops.conv2d_output_shape((4, 6, 5, 7), (6, 1, 2, 2), padding="same", groups=6) == (4, 6, 5, 7)


def test_conv2d_float32_matches_torch():
    x, w, b = randn(3, 4, 9, 8, dtype=np.float32), randn(6, 2, 3, 3, dtype=np.float32), randn(6, dtype=np.float32)
    y = ops.conv2d(x, w, b, stride=2, padding=1, groups=2)
    ty = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), stride=2, padding=1, groups=2)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ty.numpy(), rtol=1e-4, atol=1e-5)


def test_conv2d_accepts_non_contiguous_inputs():
    x = randn(2, 5, 5, 3).transpose(0, 3, 1, 2)  # NHWC storage seen as NCHW
    w = randn(3, 3, 3, 4).transpose(3, 0, 1, 2)
    expected = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding=1).numpy()
    np.testing.assert_allclose(ops.conv2d(x, w, padding=1), expected, rtol=1e-10, atol=1e-12)


_small = st.integers(1, 4)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 2), c_per_group=_small, groups=st.integers(1, 2), h=st.integers(1, 7), w=st.integers(1, 7),
       kh=st.integers(1, 3), kw=st.integers(1, 3), stride=st.sampled_from([1, 2, (1, 2), (3, 1)]),
       padding=st.sampled_from([0, 1, (0, 2), "same", "valid"]), dilation=st.sampled_from([1, 2, (2, 1)]))
def test_conv2d_output_shape_matches_actual(n, c_per_group, groups, h, w, kh, kw, stride, padding, dilation):
    c = c_per_group * groups
    x, wt = randn(n, c, h, w), randn(2 * groups, c_per_group, kh, kw)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    try:
        expected = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(wt), **kwargs).shape
    except RuntimeError:
        expected = None  # PyTorch refuses: so must fnnet, with a ValueError
    if expected is None:
        with pytest.raises(ValueError):
            ops.conv2d_output_shape(x.shape, wt.shape, **kwargs)
        with pytest.raises(ValueError):
            ops.conv2d(x, wt, **kwargs)
        return
    shape = ops.conv2d_output_shape(x.shape, wt.shape, **kwargs)
    assert shape == tuple(expected) == ops.conv2d(x, wt, **kwargs).shape


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 7), w=st.integers(1, 7), k=st.sampled_from([1, 2, 3, (1, 3), (3, 2)]),
       stride=st.sampled_from([None, 1, 2, (2, 1)]), padding=st.sampled_from([0, 1, (1, 0)]))
def test_pool_output_shape_matches_actual(h, w, k, stride, padding):
    x = randn(2, 3, h, w)
    try:
        expected = torch.nn.functional.max_pool2d(torch.tensor(x), k, stride, padding).shape
    except RuntimeError:
        expected = None
    if expected is None:
        with pytest.raises(ValueError):
            ops.pool2d_output_shape(x.shape, k, stride, padding)
        with pytest.raises(ValueError):
            ops.max_pool2d(x, k, stride, padding)
        return
    shape = ops.pool2d_output_shape(x.shape, k, stride, padding)
    assert shape == tuple(expected) == ops.max_pool2d(x, k, stride, padding).shape
    assert shape == ops.avg_pool2d(x, k, stride, padding).shape


# ------------------------------------------------------------------------------------------ pooling


@pytest.mark.parametrize("fn", [ops.max_pool2d, ops.avg_pool2d])
@pytest.mark.parametrize("args,match", [
    ((3, None, 2), r"padding should be at most half of the kernel size, got padding=\(2, 2\)"),
    ((4, None, 0), r"kernel \(4x4\) is larger than the padded input \(3x3"),
    ((2, 0, 0), r"stride must be positive"),
    ((0,), r"kernel_size must be positive"),
])
def test_pool_value_errors(fn, args, match):
    with pytest.raises(ValueError, match=match):
        fn(randn(1, 2, 3, 3), *args)


def test_pool_rank_and_type_errors():
    with pytest.raises(ValueError, match=r"4 dimensions.*x\[None\]"):
        ops.max_pool2d(randn(2, 3, 3), 2)
    with pytest.raises(ValueError, match="4 dimensions"):
        ops.global_avg_pool2d(randn(2, 3))
    with pytest.raises(TypeError, match="float32 or float64"):
        ops.max_pool2d(np.ones((1, 1, 2, 2), np.int32), 2)
    with pytest.raises(TypeError, match="count_include_pad expected a bool"):
        ops.avg_pool2d(randn(1, 1, 2, 2), 2, count_include_pad=1)


def test_max_pool2d_ties_send_gradient_to_first_max_like_torch():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1:3, 1:3] = 1.0  # every window of the 3x3/stride-1 pooling holds several equal maxima
    x[0, 0, 3, 0] = 1.0
    for k, s, p in ((3, 1, 1), (2, 2, 0), (2, 1, 1)):
        y, f = vjp(lambda a: ops.max_pool2d(a, k, s, p), x)
        u = np.arange(1.0, y.size + 1).reshape(y.shape)
        (gx,) = f(u)
        tx = torch.tensor(x, requires_grad=True)
        ty = torch.nn.functional.max_pool2d(tx, k, s, p)
        ty.backward(torch.tensor(u))
        np.testing.assert_array_equal(y, ty.detach().numpy())
        np.testing.assert_array_equal(gx, tx.grad.numpy())


def test_max_pool2d_propagates_nan_and_handles_inf():
    x = np.array([[[[1.0, np.nan], [3.0, -np.inf]]]])
    assert np.isnan(ops.max_pool2d(x, 2)[0, 0, 0, 0])
    assert ops.max_pool2d(np.full((1, 1, 2, 2), -np.inf), 2, padding=1)[0, 0, 0, 0] == -np.inf


# ------------------------------------------------------------------------------------------ batch norm


def _bn_args(shape=(4, 3, 2, 2), dtype=np.float64):
    c = shape[1]
    return randn(*shape, dtype=dtype), randn(c, dtype=dtype), randn(c, dtype=dtype), np.zeros(c, dtype), np.ones(c, dtype)


def test_batch_norm_single_value_per_channel_in_training():
    x, g, b, rm, rv = _bn_args((1, 3, 1, 1))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        ops.batch_norm(x, g, b, rm, rv, train=True)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        ops.batch_norm(x[:, :, 0, 0], g, b, rm, rv, train=True)
    assert ops.batch_norm(x, g, b, rm, rv, train=False)[0].shape == (1, 3, 1, 1)


@pytest.mark.parametrize("change,exc,match", [
    (dict(running_mean=np.zeros(3, np.float32)), TypeError, "x is float64 but running_mean is float32"),
    (dict(gamma=randn(4)), ValueError, r"gamma must have shape \(3,\)"),
    (dict(x=randn(3)), ValueError, r"at least 2 dimensions \(N, C, \*spatial\)"),
    (dict(momentum=1.5), ValueError, r"momentum must be in \[0.0, 1.0\]"),
    (dict(eps=0.0), ValueError, r"eps must be in \(0.0"),
    (dict(train=None), TypeError, "train expected a bool"),
    (dict(running_mean=None), ValueError, "pass both running_mean and running_var"),
    (dict(running_mean=None, running_var=None, train=False), ValueError, "train=False normalises with running_mean"),
])
def test_batch_norm_errors(change, exc, match):
    x, g, b, rm, rv = _bn_args()
    kwargs = dict(x=x, gamma=g, beta=b, running_mean=rm, running_var=rv, train=True)
    kwargs.update(change)
    with pytest.raises(exc, match=match):
        ops.batch_norm(**kwargs)


def test_batch_norm_running_stats_match_torch_over_five_steps():
    c = 3
    bn = torch.nn.BatchNorm2d(c, momentum=0.2, eps=1e-4).double()
    gamma, beta = randn(c), randn(c)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(gamma))
        bn.bias.copy_(torch.tensor(beta))
    rm, rv = np.zeros(c), np.ones(c)
    bn.train()
    for step in range(5):
        x = randn(4, c, 3, 2) * (step + 1) + step
        rm_before, rv_before = rm.copy(), rv.copy()
        y, new_rm, new_rv = ops.batch_norm(x, gamma, beta, rm, rv, train=True, momentum=0.2, eps=1e-4)
        np.testing.assert_array_equal(rm, rm_before)  # state is returned, never mutated
        np.testing.assert_array_equal(rv, rv_before)
        rm, rv = new_rm, new_rv
        ty = bn(torch.tensor(x))
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(rm, bn.running_mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(rv, bn.running_var.numpy(), rtol=1e-12)
    bn.eval()
    x = randn(2, c, 3, 3)
    y, same_rm, same_rv = ops.batch_norm(x, gamma, beta, rm, rv, train=False, momentum=0.2, eps=1e-4)
    np.testing.assert_allclose(y, bn(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-12)
    assert same_rm is rm and same_rv is rv


def test_batch_norm_under_grad_traces_only_y():
    x, g, b, rm, rv = _bn_args()

    def fn(x, g):
        y, new_rm, new_rv = ops.batch_norm(x, g, b, rm, rv, train=True)
        assert type(y) is Tracer and type(new_rm) is np.ndarray and type(new_rv) is np.ndarray
        return y

    y, f = vjp(fn, x, g)
    gx, gg = f(2 * y)  # the gradient of sum(y**2)
    assert gx.shape == x.shape and gg.shape == g.shape
    np.testing.assert_allclose(gx.sum(axis=(0, 2, 3)), 0.0, atol=1e-10)  # batch-mean invariance


def test_batch_norm_float32_stats_keep_dtype():
    y, rm, rv = ops.batch_norm(*_bn_args(dtype=np.float32), train=True)
    assert y.dtype == rm.dtype == rv.dtype == np.float32


# ------------------------------------------------------------------------------------------ layer norm


def test_layer_norm_errors():
    with pytest.raises(ValueError, match=r"gamma must have shape \(4,\)"):
        ops.layer_norm(randn(2, 4), randn(3), None)
    with pytest.raises(ValueError, match="at least 1-D and non-empty"):
        ops.layer_norm(np.ones(()), None, None)
    with pytest.raises(TypeError, match="x is float64 but beta is float32"):
        ops.layer_norm(randn(2, 4), None, randn(4, dtype=np.float32))


# ------------------------------------------------------------------------------------------ embedding


TABLE = randn(6, 3)


def test_embedding_index_errors():
    with pytest.raises(TypeError, match="indices must be an int32 or int64 array, got dtype float64"):
        ops.embedding(np.array([0.0, 1.0]), TABLE)
    with pytest.raises(TypeError, match="got list"):
        ops.embedding([0, 1], TABLE)
    with pytest.raises(TypeError, match="got dtype uint8"):
        ops.embedding(np.array([0, 1], np.uint8), TABLE)
    idx = np.array([[0, 1, 2], [3, 4, 9]])
    with pytest.raises(IndexError, match=r"indices\[1, 2\] = 9 is out of range for a table of 6 rows"):
        ops.embedding(idx, TABLE)
    with pytest.raises(IndexError, match=r"indices\[1\] = -1 is out of range .* negative indices are not wrapped"):
        ops.embedding(np.array([0, -1, 7]), TABLE)
    with pytest.raises(ValueError, match="table must have 2 dimensions"):
        ops.embedding(np.array([0]), randn(6))


def test_embedding_scalar_and_empty_indices():
    assert ops.embedding(np.array(2), TABLE).shape == (3,)
    assert ops.embedding(np.zeros((2, 0), np.int64), TABLE).shape == (2, 0, 3)
    _, f = vjp(lambda t: ops.embedding(np.zeros((0,), np.int64), t), TABLE)
    np.testing.assert_array_equal(f(np.zeros((0, 3)))[0], np.zeros_like(TABLE))


def test_embedding_gradient_matches_add_at():
    idx = rng.integers(0, 50, size=(40, 25))
    table = randn(60, 8, dtype=np.float32)
    _, f = vjp(lambda t: ops.embedding(idx, t), table)
    u = randn(40, 25, 8, dtype=np.float32)
    (gt,) = f(u)
    expected = np.zeros((60, 8))
    np.add.at(expected, idx.reshape(-1), u.reshape(-1, 8).astype(np.float64))
    assert gt.dtype == np.float32
    np.testing.assert_allclose(gt, expected, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------ dropout


def test_dropout_errors_show_the_right_call():
    x = randn(3, 4)
    with pytest.raises(ValueError, match=r"dropout\(x, key=fnnet.random.key\(0\), rate=0.5\)"):
        ops.dropout(x, rate=0.5)
    with pytest.raises(TypeError, match=r"key must be a \(2,\) uint32 array.*fnnet.random.key\(0\)"):
        ops.dropout(x, 0, 0.5)
    for rate in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"probability of dropping and must be in \[0, 1\)"):
            ops.dropout(x, fnnet.random.key(0), rate)
    with pytest.raises(TypeError, match="rate expected a float"):
        ops.dropout(x, fnnet.random.key(0), "0.5")


def test_dropout_identity_cases_and_mask():
    x = randn(200, 50)
    key = fnnet.random.key(3)
    assert ops.dropout(x, key, 0.5, train=False) is x
    assert ops.dropout(x, None, 0.5, train=False) is x
    assert ops.dropout(x, None, 0.0) is x
    y = ops.dropout(x, key, 0.25)
    np.testing.assert_array_equal(y, ops.dropout(x, key, 0.25))  # same key, same mask
    assert not np.array_equal(y, ops.dropout(x, fnnet.random.key(4), 0.25))
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(y[kept], x[kept] / 0.75, rtol=1e-15)
    _, f = vjp(lambda a: ops.dropout(a, key, 0.25), x)
    (g,) = f(np.ones_like(x))
    np.testing.assert_array_equal(g, kept / 0.75)


# ------------------------------------------------------------------------------------------ determinism


def _with_threads(n, fn):
    old = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        return fn()
    finally:
        numba.set_num_threads(old)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
def test_reductions_do_not_depend_on_the_thread_count():
    x, w, b = randn(19, 4, 6, 6, dtype=np.float32), randn(6, 2, 3, 3, dtype=np.float32), randn(6, dtype=np.float32)
    u = randn(19, 6, 6, 6, dtype=np.float32)
    idx = rng.integers(0, 5, size=300)
    table, ue = randn(5, 7, dtype=np.float32), randn(300, 7, dtype=np.float32)
    xl, gl, ul = randn(100, 9, dtype=np.float32), randn(9, dtype=np.float32), randn(100, 9, dtype=np.float32)
    xb, ub = randn(8, 3, 5, 5, dtype=np.float32), randn(8, 3, 5, 5, dtype=np.float32)
    gb, bb = randn(3, dtype=np.float32), randn(3, dtype=np.float32)

    def run():
        conv = vjp(lambda *a: ops.conv2d(*a, padding=1, groups=2), x, w, b)[1](u)
        emb = vjp(lambda t: ops.embedding(idx, t), table)[1](ue)
        ln = vjp(lambda a, g: ops.layer_norm(a, g, None), xl, gl)[1](ul)
        bn = vjp(lambda a, g, c: ops.batch_norm(a, g, c, None, None, train=True)[0], xb, gb, bb)[1](ub)
        return [np.asarray(a) for a in (*conv, *emb, *ln, *bn)]

    one, two = _with_threads(1, run), _with_threads(2, run)
    for a, b_ in zip(one, two):
        np.testing.assert_array_equal(a, b_)


def test_pool2d_output_shape_rejects_negative_sizes():
    with pytest.raises(ValueError, match=r"pool2d_output_shape: x_shape entries must be non-negative .*\(2, -2, 4, 4\)"):
        ops.pool2d_output_shape((2, -2, 4, 4), 2)
