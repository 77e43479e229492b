"""fnnet.vmap and fnnet.per_example_grads: results equal the Python loop over examples, bit for bit."""

import numpy as np
import pytest

import fnnet
import fnnet.ops as ops
from fnnet import losses
from fnnet.layers import Linear, ReLU, Sequential


def _rng():
    return np.random.default_rng(0)


def _loop(fn, n, example):
    """``[fn(*example(i)) for i in range(n)]`` stacked along axis 0, leaf by leaf."""
    outs = [fn(*example(i)) for i in range(n)]
    return fnnet.tree.map(lambda *leaves: np.stack(leaves), *outs)


def _assert_bitwise(a, b):
    la, da = fnnet.tree.flatten(a)
    lb, db = fnnet.tree.flatten(b)
    assert da == db
    for u, v in zip(la, lb):
        assert u.shape == v.shape and u.dtype == v.dtype
        np.testing.assert_array_equal(u, v)


def _mlp():
    model = Sequential([Linear(16), ReLU(), Linear(5)])
    params = fnnet.tree.astype(model.init(fnnet.random.key(1), (None, 6)), np.float64)
    x = _rng().standard_normal((7, 6))
    y = _rng().integers(0, 5, 7)

    def loss(p, xi, yi):  # one example: xi (6,), yi ()
        return losses.softmax_cross_entropy(model.apply(p, xi[None]), np.asarray(yi)[None])

    return model, params, x, y, loss


FUNCTIONS = {  # name -> (fn, args builder)
    "elementwise": (lambda a, b: ops.tanh(a) * b + 1.0,
                    lambda r: (r.standard_normal((5, 3)), r.standard_normal((5, 3)))),
    "linear": (lambda x, w, b: ops.linear(x, w, b),
               lambda r: (r.standard_normal((4, 3)), r.standard_normal((4, 3, 2)), r.standard_normal((4, 2)))),
    "reduction": (lambda x: ops.sum(ops.relu(x)), lambda r: (r.standard_normal((6, 2, 3)),)),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_vmap_equals_the_loop(name):
    fn, make = FUNCTIONS[name]
    args = make(_rng())
    expected = _loop(fn, len(args[0]), lambda i: [a[i] for a in args])
    _assert_bitwise(fnnet.vmap(fn)(*args), expected)


def test_mlp_forward_equals_the_loop():
    model, params, x, _, _ = _mlp()
    fn = fnnet.vmap(lambda p, xi: model.apply(p, xi), in_axes=(None, 0))
    _assert_bitwise(fn(params, x), _loop(model.apply, len(x), lambda i: (params, x[i])))


def test_per_example_grads_of_an_mlp_equal_the_loop_and_the_batch_gradient():
    _, params, x, y, loss = _mlp()
    expected = _loop(fnnet.grad(loss), len(x), lambda i: (params, x[i], y[i]))
    got = fnnet.vmap(fnnet.grad(loss), in_axes=(None, 0, 0))(params, x, y)
    _assert_bitwise(got, expected)
    _assert_bitwise(fnnet.per_example_grads(loss, params, x, y), expected)
    assert got["0"]["weight"].shape == (7, 6, 16)
    # the mean of the per-example gradients is the gradient of the mean loss
    model = _mlp()[0]
    full = fnnet.grad(lambda p: losses.softmax_cross_entropy(model.apply(p, x), y))(params)
    fnnet.tree.assert_allclose(fnnet.tree.map(lambda g: g.mean(0), got), full, rtol=1e-12, atol=1e-14)


def test_in_axes_none_int_and_tree():
    r = _rng()
    params = {"w": r.standard_normal((3, 2)), "b": r.standard_normal((4, 2))}
    x = r.standard_normal((3, 4))  # examples along axis 1

    def fn(p, xi):
        return ops.linear(xi, p["w"], p["b"])

    got = fnnet.vmap(fn, in_axes=({"w": None, "b": 0}, 1))(params, x)
    expected = _loop(fn, 4, lambda i: ({"w": params["w"], "b": params["b"][i]}, x[:, i]))
    _assert_bitwise(got, expected)
    shared = {"w": params["w"], "b": params["b"][0]}
    _assert_bitwise(fnnet.vmap(fn, in_axes=[None, -1])(shared, x), _loop(fn, 4, lambda i: (shared, x[:, i])))


def test_out_axes_int_none_and_tree():
    x = _rng().standard_normal((4, 3))
    c = np.arange(2.0)

    def fn(xi):
        return {"y": xi * 2.0, "c": c}

    got = fnnet.vmap(fn, out_axes={"y": 1, "c": None})(x)
    np.testing.assert_array_equal(got["y"], (x * 2.0).T)
    assert got["c"] is c
    assert fnnet.vmap(lambda xi: xi * 2.0, out_axes=-1)(x).shape == (3, 4)


def test_grad_of_vmap_is_traced():
    x = _rng().standard_normal((4, 3))
    g = fnnet.grad(lambda a: ops.sum(fnnet.vmap(lambda r: ops.sum(r * r))(a)))(x)
    np.testing.assert_allclose(g, 2.0 * x, rtol=1e-15)


def test_keyword_arguments_are_not_batched():
    x = _rng().standard_normal((4, 3))
    got = fnnet.vmap(lambda xi, scale: xi * scale)(x, scale=3.0)
    np.testing.assert_array_equal(got, x * 3.0)


BAD = [  # (in_axes, args, message)
    ((0,), (np.ones((2, 3)), np.ones((2, 3))), r"in_axes has 1 entries .* 2 positional"),
    (({"w": 0},), ({"w": np.ones(2), "b": np.ones(2)},), r"in_axes\[0\] must be an int, None, or a tree prefix"),
    (((0, 0),), ((np.ones(2),),), r"in_axes\[0\] must be .* a tuple of length 1"),
    ((0, 0), (np.ones((2, 3)), np.ones((3, 3))), r".*disagree on the batch size \(argument 0: 2, argument 1: 3\)"),
    ((2,), (np.ones((2, 3)),), r".*axis 2 for argument 0 of shape \(2, 3\); expected an axis in \[-2, 1\]"),
    ((None,), (np.ones(3),), r"no argument is batched"),
    ((0,), (np.ones((0, 3)),), r"batch size 0"),
    ((0,), (3.0,), r"argument 0 is batched .* float, not an array"),
    (("0",), (np.ones(3),), r"in_axes\[0\] must be an int, None"),
    (({"w": 1},), ({"w": np.ones((2, 3)), "b": np.ones(4)},), r"in_axes\[0\] must be"),
    ({"w": 0}, ({"w": np.ones(2)},), r"in_axes must be an int, None, or a tuple .* in_axes=\(\{'w': 0\},\)"),
    (True, (np.ones(2),), r"in_axes must be an int, None, or a tuple"),
]


@pytest.mark.parametrize("in_axes, args, message", BAD)
def test_bad_in_axes_raise_value_errors_naming_the_argument(in_axes, args, message):
    with pytest.raises(ValueError, match=r"^vmap\(<lambda>\): " + message):
        fnnet.vmap(lambda *a: a[0], in_axes=in_axes)(*args)


def test_leaf_of_a_tree_is_named_in_batch_size_errors():
    args = ({"w": np.ones((2, 3)), "b": np.ones((3, 3))},)
    with pytest.raises(ValueError, match=r"argument 0 \(leaf 'b'\): 3, argument 0 \(leaf 'w'\): 2"):
        fnnet.vmap(lambda p: p["w"])(*args)


def test_bad_out_axes_and_outputs():
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"out_axes gives axis 3 for output leaf 0 of 1 dimension"):
        fnnet.vmap(lambda xi: xi, out_axes=3)(x)
    with pytest.raises(ValueError, match=r"out_axes is None for output leaf 0, but it differs"):
        fnnet.vmap(lambda xi: xi, out_axes=None)(np.arange(4.0).reshape(2, 2))
    with pytest.raises(ValueError, match=r"returned .* for example 1 but .* for example 0"):
        fnnet.vmap(lambda xi: (xi,) if xi[0] > 0 else xi)(np.array([[-1.0], [1.0]]))
    with pytest.raises(ValueError, match=r"per_example_grads: give at least one batched argument"):
        fnnet.per_example_grads(lambda p: p, {})


def test_tuple_outputs_and_one_dimensional_batches():
    x = _rng().standard_normal(5).astype(np.float32)  # each example is a scalar
    fn = fnnet.vmap(lambda xi, c: (ops.exp(xi) * c, c + 1.0), in_axes=(0, None), out_axes=(0, 1))
    got = fn(x, np.ones(2, np.float32))
    np.testing.assert_array_equal(got[0], np.stack([ops.exp(xi) * np.ones(2, np.float32) for xi in x]))
    assert got[0].dtype == np.float32 and got[1].shape == (2, 5)


def test_per_example_grads_float32_bitwise_and_with_keywords():
    model, params, x, y, _ = _mlp()
    params, x = fnnet.tree.astype(params, np.float32), x.astype(np.float32)

    def loss(p, xi, yi, scale=1.0):
        return losses.softmax_cross_entropy(model.apply(p, xi[None]), np.asarray(yi)[None]) * scale

    expected = _loop(lambda *a: fnnet.grad(loss)(*a, scale=2.0), len(x), lambda i: (params, x[i], y[i]))
    _assert_bitwise(fnnet.per_example_grads(loss, params, x, y, scale=2.0), expected)
