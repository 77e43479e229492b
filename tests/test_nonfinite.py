"""NaN and inf propagate through ops as they do in NumPy (gradients as in PyTorch), and a training step
reports the first non-finite loss or gradient instead of training on silently."""

import numpy as np
import pytest
import torch

import fnnet
import fnnet.ops as ops
from fnnet.kernels._jit import SERIAL_STREAM
from fnnet.layers import BatchNorm, Conv2D, Dropout, Flatten, Linear, ReLU, Sequential

NAN, INF = np.nan, np.inf
X = np.array([NAN, -1.0, 0.0, 2.0, INF, -INF])
Y = np.array([1.0, NAN, 0.0, NAN, 3.0, -INF])


def _torch_grad(fn, *arrays):
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    fn(*ts).backward(torch.ones(np.broadcast_shapes(*(a.shape for a in arrays)), dtype=torch.float64))
    return [t.grad.numpy() for t in ts]


@pytest.mark.parametrize("name, np_fn, torch_fn", [
    ("relu", lambda x: np.maximum(x, 0), torch.relu),
    ("leaky_relu", lambda x: np.where(x > 0, x, 0.01 * x), lambda x: torch.nn.functional.leaky_relu(x, 0.01)),
    ("elu", lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))), torch.nn.functional.elu),
    ("abs", np.abs, torch.abs),
    ("tanh", np.tanh, torch.tanh),
])
def test_unary_ops_propagate_nan_like_numpy_and_torch(name, np_fn, torch_fn):
    op = getattr(ops, name)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(op(X), np_fn(X))
    g = fnnet.grad(lambda x: ops.sum(op(x)))(X)
    np.testing.assert_array_equal(g, _torch_grad(torch_fn, X)[0])


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_and_minimum_propagate_nan_in_either_operand(name):
    np.testing.assert_array_equal(getattr(ops, name)(X, Y), getattr(np, name)(X, Y))
    ga, gb = fnnet.grad(lambda a, b: ops.sum(getattr(ops, name)(a, b)), argnums=(0, 1))(X, Y)
    ta, tb = _torch_grad(getattr(torch, name), X, Y)
    np.testing.assert_array_equal(ga, ta)
    np.testing.assert_array_equal(gb, tb)


def test_fused_linear_relu_and_conv_relu_keep_nan():
    key = fnnet.random.key(0)
    dense = Sequential([Linear(3), ReLU()])
    p = dense.init(key, (None, 4))
    x = np.ones((2, 4), np.float32)
    x[1, 2] = NAN
    y = dense.apply(p, x)
    assert np.isnan(y[1]).all() and np.isfinite(y[0]).all()
    conv = Sequential([Conv2D(2, 3, padding=1), ReLU()])
    p = conv.init(key, (None, 1, 5, 5))
    img = np.ones((2, 1, 5, 5), np.float32)
    img[1, 0, 2, 2] = NAN
    out = conv.apply(p, img)
    assert np.isnan(out[1, :, 1:4, 1:4]).all() and np.isfinite(out[0]).all()


def test_dropout_keeps_nan_in_dropped_positions():
    x = np.full((4, 64), NAN, dtype=np.float32)
    y = ops.dropout(x, fnnet.random.key(1), 0.5) if hasattr(ops, "dropout") else None
    out = Dropout(0.5).apply({}, x, key=fnnet.random.key(1), train=True)
    assert np.isnan(out).all()
    if y is not None:
        assert np.isnan(y).all()


def _cnn_and_data():
    model = Sequential([Conv2D(4, 3, padding=1), BatchNorm(), ReLU(), Flatten(), Linear(3)])
    params = model.init(fnnet.random.key(0), (None, 1, 4, 4))
    state = model.init_state((None, 1, 4, 4))
    x = np.random.default_rng(0).standard_normal((8, 1, 4, 4)).astype(np.float32)
    return model, params, state, x, np.arange(8) % 3


def test_one_nan_pixel_makes_the_loss_nan_not_a_finite_number():
    model, params, state, x, y = _cnn_and_data()
    x[3, 0, 1, 1] = NAN
    logits, _ = model.apply(params, x, state=state, train=True)
    assert np.isnan(fnnet.losses.softmax_cross_entropy(logits, y))


def test_train_step_reports_the_first_non_finite_loss_before_updating():
    model, params, state, x, y = _cnn_and_data()
    opt = fnnet.optim.adam(1e-3)
    step = fnnet.train.make_train_step(model, fnnet.losses.softmax_cross_entropy, opt)
    opt_state = opt.init(params)
    params, state, opt_state, _ = step(params, state, opt_state, x, y, fnnet.random.key(2))
    bad = x.copy()
    bad[0, 0, 0, 0] = NAN
    with pytest.raises(fnnet.train.NonFiniteError, match="the loss is nan; the update was not applied"):
        step(params, state, opt_state, bad, y, fnnet.random.key(3))
    with pytest.raises(fnnet.train.NonFiniteError, match=r"batch 1 of 2: train step: the loss is nan"):
        xs = np.concatenate([x, bad])
        fnnet.train.run_epoch(step, params, state, opt_state, xs, np.concatenate([y, y]), fnnet.random.key(4),
                              batch_size=8, shuffle=False)
    unchecked = fnnet.train.make_train_step(model, fnnet.losses.softmax_cross_entropy, opt, check_finite=False)
    new_params, *_ , metrics = unchecked(params, state, opt_state, bad, y, fnnet.random.key(3))
    assert np.isnan(metrics["loss"])


def test_train_step_names_the_param_whose_gradient_is_not_finite():
    model = Sequential([Linear(2)])
    params = model.init(fnnet.random.key(0), (None, 3))
    opt = fnnet.optim.sgd(0.1)

    def loss(out, y):  # finite loss, infinite gradient (sqrt at 0)
        return ops.sum(ops.sqrt(ops.multiply(out, 0.0)))

    step = fnnet.train.make_train_step(model, loss, opt)
    x = np.ones((2, 3), dtype=np.float32)
    with pytest.raises(fnnet.train.NonFiniteError, match="gradient of the param '0/(bias|weight)'"):
        step(params, {}, opt.init(params), x, np.zeros((2, 2), np.float32), fnnet.random.key(0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [70_000, SERIAL_STREAM + 16_385], ids=["serial", "parallel"])
def test_all_finite_kernel_finds_one_bad_value_anywhere(dtype, n):
    from fnnet.kernels import all_finite

    x = np.random.default_rng(0).standard_normal(n).astype(dtype)
    assert all_finite(x) and all_finite(x[:0]) and all_finite(np.full(9, np.finfo(dtype).max, dtype))
    for where in (0, 16_383, 16_384, n - 1):  # chunk edges included
        for bad in (np.nan, np.inf, -np.inf):
            y = x.copy()
            y[where] = bad
            assert not all_finite(y)


def test_jitted_train_step_names_the_param_whose_gradient_is_not_finite_on_replay():
    model = Sequential([Linear(2)])
    params = model.init(fnnet.random.key(0), (None, 3))
    opt = fnnet.optim.sgd(0.1)

    def loss(out, y):  # finite loss; where y is 0 the gradient is 0 * inf = NaN (sqrt at 0)
        return ops.sum(ops.sqrt(ops.multiply(ops.multiply(out, out), y)))

    step = fnnet.train.make_train_step(model, loss, opt)
    x = np.ones((2, 3), dtype=np.float32)
    step(params, {}, opt.init(params), x, np.ones((2, 2), np.float32), fnnet.random.key(0))  # traces: finite
    with pytest.raises(fnnet.train.NonFiniteError, match="gradient of the param '0/(bias|weight)'"):
        step(params, {}, opt.init(params), x, np.zeros((2, 2), np.float32), fnnet.random.key(0))
    assert step.jitted.cache_info().misses == 1  # the replay's quick test failed and the full check named it
