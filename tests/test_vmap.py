"""fnnet.vmap and fnnet.per_example_grads: results equal the Python loop over examples.

The batched run (one call of the function on the whole batch, through each primitive's batching rule) must
match the loop in float64 to ``rtol=1e-12, atol=1e-14`` (a GEMM over every example's rows rounds differently
from one GEMM per example), and bit for bit where each example is computed as in the loop (``bitwise``
cases: elementwise ops, shape ops, indexing, reductions, softmaxes, pooling, convolutions, the fused
cross-entropies).  The fallback to the loop, taken with a ``FallbackWarning`` naming what has no rule, is
bitwise.
Every test here fails on an unexpected fallback (``pytestmark``), so each case really runs batched.
"""

import warnings
from typing import NamedTuple

import numpy as np
import pytest

import fnnet
import fnnet.ops as ops
from fnnet import losses
from fnnet.autodiff import registered_primitives
from fnnet.layers import Conv2D, Flatten, Linear, MaxPool2D, ReLU, Remat, Sequential
from fnnet.vmap import FallbackWarning

pytestmark = pytest.mark.filterwarnings("error::fnnet.vmap.FallbackWarning")

RTOL, ATOL = 1e-12, 1e-14
N = 4  # examples


def _rng():
    return np.random.default_rng(0)


def _example(args, in_axes, i):
    axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
    return [a if ax is None else np.take(a, i, axis=ax) for a, ax in zip(args, axes)]


def _loop(fn, n, example):
    """``[fn(*example(i)) for i in range(n)]`` stacked along axis 0, leaf by leaf."""
    outs = [fn(*example(i)) for i in range(n)]
    return fnnet.tree.map(lambda *leaves: np.stack(leaves), *outs)


def _assert_equal(a, b, bitwise=False):
    la, da = fnnet.tree.flatten(a)
    lb, db = fnnet.tree.flatten(b)
    assert da == db
    for u, v in zip(la, lb):
        assert type(u) is np.ndarray and u.shape == v.shape and u.dtype == v.dtype
        if bitwise:
            np.testing.assert_array_equal(u, v)
        else:
            np.testing.assert_allclose(u, v, rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------------------- the batching rules

class Case(NamedTuple):
    prim: str  # the primitive whose batching rule this exercises
    fn: object
    args: object  # rng -> the arguments (float64; integer labels are not differentiated)
    in_axes: object = 0
    bitwise: bool = False


def _normal(*shape):
    return lambda r: (r.standard_normal(shape),)


_UNARY = {
    "negative": ops.negative, "exp": ops.exp, "log": lambda x: ops.log(x * x + 0.5),
    "sqrt": lambda x: ops.sqrt(x * x + 0.5), "abs": ops.abs, "clip": lambda x: ops.clip(x, -0.5, 0.7),
    "relu": ops.relu, "leaky_relu": lambda x: ops.leaky_relu(x, 0.1), "elu": ops.elu,
    "gelu": lambda x: ops.gelu(x, "tanh"), "sigmoid": ops.sigmoid, "tanh": ops.tanh, "softplus": ops.softplus,
    "erf": ops.erf,
}
_BINARY = {"add": ops.add, "subtract": ops.subtract, "multiply": ops.multiply, "divide": ops.divide,
           "maximum": ops.maximum, "minimum": ops.minimum, "power": ops.power}
_BROADCASTS = [  # in_axes, shapes of a and b; per example a (3, 1) and b (2, 1, 4) broadcast to (2, 3, 4)
    ((0, None), (N, 3, 1), (2, 1, 4)),
    ((None, 1), (3, 1), (2, N, 1, 4)),
    ((0, 0), (N, 3, 1), (N, 2, 1, 4)),
    ((2, 0), (3, 1, N), (N, 4)),  # and a 1-D b
]


def _binary_args(sa, sb, positive):
    return lambda r: (r.uniform(0.5, 2.0, sa) if positive else r.standard_normal(sa), r.standard_normal(sb))


def _labels(*shape):
    return lambda r: r.integers(0, 5, shape)


CASES = [Case(name, fn, _normal(N, 3, 2), bitwise=True) for name, fn in _UNARY.items()]
CASES += [Case("relu", ops.relu, _normal(3, N), in_axes=1, bitwise=True)]
CASES += [Case(name, fn, _binary_args(sa, sb, name == "power"), axes, bitwise=True)
          for name, fn in _BINARY.items() for axes, sa, sb in _BROADCASTS]
CASES += [
    Case("where", lambda a, b: ops.where(a > 0.0, a, b), _binary_args((N, 3, 1), (2, 1, 4), False), (0, None), True),
    Case("where", lambda a, b: ops.where(np.array([True, False, True]), a, b), _binary_args((N, 3), (N, 3), False),
         (0, 0), True),
    Case("sum", lambda x: ops.sum(x, axis=(0, 2)), _normal(3, N, 4, 2), 1, True),
    Case("sum", lambda x: ops.sum(x, keepdims=True), _normal(N, 3, 2), 0, True),
    Case("mean", lambda x: ops.mean(x, axis=-1), _normal(N, 3, 5), 0, True),
    Case("max", lambda x: ops.max(x, axis=0, keepdims=True), _normal(N, 3, 5), 0, True),
    Case("softmax", lambda x: ops.softmax(x, axis=0), _normal(N, 3, 5), 0, True),
    Case("log_softmax", ops.log_softmax, _normal(N, 3, 5), 0, True),
    Case("logsumexp", lambda x: ops.logsumexp(x, axis=0, keepdims=True), _normal(3, 5, N), -1, True),
    Case("reshape", lambda x: ops.reshape(x, (2, -1)), _normal(N, 3, 4), 0, True),
    Case("reshape", lambda x: x.reshape(()), _normal(N, 1), 0, True),
    Case("transpose", lambda x: x.T, _normal(N, 3, 4), 0, True),
    Case("transpose", lambda x: ops.transpose(x, (1, 0, 2)), _normal(2, 3, N, 4), 2, True),
    Case("getitem", lambda x: x[None, 1:, ::2], _normal(N, 3, 4), 0, True),
    Case("getitem", lambda x: x[..., 1], _normal(3, N, 4), 1, True),
    Case("linear", ops.linear, lambda r: (r.standard_normal((N, 2, 3)), r.standard_normal((3, 4)),
                                          r.standard_normal(4)), (0, None, None)),
    Case("linear", lambda x, w: ops.linear(x, w, activation="relu"),
         lambda r: (r.standard_normal((N, 3)), r.standard_normal((3, 4))), (0, None)),
    Case("linear", ops.linear, lambda r: (r.standard_normal((N, 3)), r.standard_normal((N, 3, 2)),
                                          r.standard_normal((N, 2)))),
    Case("linear", lambda x, w, b: ops.linear(x, w, b, activation="relu"),
         lambda r: (r.standard_normal((2, 3)), r.standard_normal((3, 2, N)), r.standard_normal(2)), (None, 2, None)),
    Case("matmul", ops.matmul, lambda r: (r.standard_normal((N, 2, 3)), r.standard_normal((3, 4))), (0, None)),
    Case("matmul", ops.matmul, lambda r: (r.standard_normal((5, 2, 3)), r.standard_normal((N, 3, 4))), (None, 0)),
    Case("matmul", ops.matmul, lambda r: (r.standard_normal((N, 5, 2, 3)), r.standard_normal((N, 3, 4)))),
    Case("matmul", ops.matmul, lambda r: (r.standard_normal((N, 3)), r.standard_normal((3, N)),), (0, 1)),
    Case("conv2d", lambda x, w, b: ops.conv2d(x, w, b, stride=2, padding=1),
         lambda r: (r.standard_normal((N, 2, 3, 5, 5)), r.standard_normal((4, 3, 3, 3)), r.standard_normal(4)),
         (0, None, None), True),
    Case("conv2d", lambda x, w: ops.conv2d(x, w, groups=2, activation="relu"),
         lambda r: (r.standard_normal((1, 4, 5, N, 6)), r.standard_normal((4, 2, 2, 3))), (3, None), True),
    Case("conv1d", lambda x, w, b: ops.conv1d(x, w, b, padding="same"),
         lambda r: (r.standard_normal((N, 2, 3, 7)), r.standard_normal((4, 3, 3)), r.standard_normal(4)),
         (0, None, None), True),
    Case("concatenate", lambda a, b: ops.concatenate([a, b, a], axis=1), _binary_args((N, 2, 3), (2, 1), False),
         (0, None), True),
    Case("stack", lambda a, b: ops.stack([b, a], axis=-1), _binary_args((2, 3, N), (2, 3), False), (2, None), True),
    Case("pad", lambda x: ops.pad(x, ((1, 2), 1), mode="reflect"), _normal(N, 2, 3, 4, 5), 0, True),
    Case("max_pool2d", lambda x: ops.max_pool2d(x, 2, padding=1), _normal(N, 2, 3, 5, 4), 0, True),
    Case("max_pool1d", lambda x: ops.max_pool1d(x, 3, stride=2), _normal(2, N, 3, 7), 1, True),
    Case("avg_pool2d", lambda x: ops.avg_pool2d(x, (2, 3), ceil_mode=True), _normal(N, 2, 3, 5, 4), 0, True),
    Case("avg_pool1d", lambda x: ops.avg_pool1d(x, 2), _normal(N, 2, 3, 7), 0, True),
    Case("global_avg_pool2d", ops.global_avg_pool2d, _normal(N, 2, 3, 5, 4), 0, True),
    Case("softmax_cross_entropy", losses.softmax_cross_entropy,
         lambda r: (r.standard_normal((N, 2, 5)), _labels(N, 2)(r)), 0, True),
    Case("softmax_cross_entropy", lambda x, y: losses.softmax_cross_entropy(x, y, "none"),
         lambda r: (r.standard_normal((N, 3, 5)), _labels(3)(r)), (0, None), True),
    Case("softmax_cross_entropy", lambda x, y: losses.softmax_cross_entropy(x, y, "sum"),
         lambda r: (r.standard_normal((3, 5)), _labels(N, 3)(r)), (None, 0), True),
    Case("softmax_cross_entropy_with_probs", losses.softmax_cross_entropy_with_probs,
         lambda r: (r.standard_normal((N, 2, 5)), r.uniform(0, 1, (N, 2, 5))), 0, True),
    Case("softmax_cross_entropy_with_probs", lambda x, t: losses.softmax_cross_entropy_with_probs(x, t, "none"),
         lambda r: (r.standard_normal((N, 2, 5)), r.uniform(0, 1, (2, 5))), (0, None), True),
]


def _case_id(case):
    return f"{case.prim}-{case.in_axes}"


def _n(args, in_axes):
    axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
    return next(a.shape[ax] for a, ax in zip(args, axes) if ax is not None)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_batched_forward_equals_the_loop(case):
    args = case.args(_rng())
    expected = _loop(case.fn, _n(args, case.in_axes), lambda i: _example(args, case.in_axes, i))
    _assert_equal(fnnet.vmap(case.fn, in_axes=case.in_axes)(*args), expected, case.bitwise)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_batched_per_example_gradients_equal_the_loop(case):
    """Gradients w.r.t. every float argument, batched ones and shared ones (a gradient per example)."""
    r = _rng()
    args = case.args(r)
    weights = r.standard_normal(np.shape(case.fn(*_example(args, case.in_axes, 0))))

    def loss(*a):
        return ops.sum(case.fn(*a) * weights)

    argnums = tuple(i for i, a in enumerate(args) if a.dtype.kind == "f")
    per_example = fnnet.grad(loss, argnums=argnums)
    expected = _loop(per_example, _n(args, case.in_axes), lambda i: _example(args, case.in_axes, i))
    _assert_equal(fnnet.vmap(per_example, in_axes=case.in_axes)(*args), expected, case.bitwise)


def test_every_batching_rule_is_in_the_table():
    with_rules = {name for name, p in registered_primitives().items() if p.batch_rule is not None}
    assert with_rules - {case.prim for case in CASES} == set()


# ------------------------------------------------------------------------- models and per-example grads

def _mlp():
    model = Sequential([Linear(16), ReLU(), Linear(5)])
    params = fnnet.tree.astype(model.init(fnnet.random.key(1), (None, 6)), np.float64)
    x = _rng().standard_normal((7, 6))
    y = _rng().integers(0, 5, 7)

    def loss(p, xi, yi):  # one example: xi (6,), yi ()
        return losses.softmax_cross_entropy(model.apply(p, xi[None]), yi[None])

    return model, params, x, y, loss


def test_mlp_forward_equals_the_loop():
    model, params, x, _, _ = _mlp()
    fn = fnnet.vmap(lambda p, xi: model.apply(p, xi), in_axes=(None, 0))
    _assert_equal(fn(params, x), _loop(model.apply, len(x), lambda i: (params, x[i])))


def test_per_example_grads_of_an_mlp_equal_the_loop_and_the_batch_gradient():
    model, params, x, y, example_loss = _mlp()
    expected = _loop(fnnet.grad(example_loss), len(x), lambda i: (params, x[i], y[i]))
    calls = []

    def loss(*args):
        calls.append(args[1].shape)
        return example_loss(*args)

    got = fnnet.vmap(fnnet.grad(loss), in_axes=(None, 0, 0))(params, x, y)
    assert calls == [(6,)]  # one call, on the whole batch (each example's shape), not a loop
    _assert_equal(got, expected)
    _assert_equal(fnnet.per_example_grads(loss, params, x, y), expected)
    assert got["0"]["weight"].shape == (7, 6, 16)
    # the mean of the per-example gradients is the gradient of the mean loss
    full = fnnet.grad(lambda p: losses.softmax_cross_entropy(model.apply(p, x), y))(params)
    fnnet.tree.assert_allclose(fnnet.tree.map(lambda g: g.mean(0), got), full, rtol=1e-12, atol=1e-14)


def test_per_example_grads_of_a_cnn_equal_the_loop():
    model = Sequential([Conv2D(4, 3, padding=1), ReLU(), MaxPool2D(2), Flatten(), Linear(3)])
    params = fnnet.tree.astype(model.init(fnnet.random.key(2), (None, 2, 6, 6)), np.float64)
    x = _rng().standard_normal((5, 2, 6, 6))
    y = _rng().integers(0, 3, 5)

    def loss(p, xi, yi):
        return losses.softmax_cross_entropy(model.apply(p, xi[None]), yi[None])

    expected = _loop(fnnet.grad(loss), len(x), lambda i: (params, x[i], y[i]))
    got = fnnet.per_example_grads(loss, params, x, y)
    _assert_equal(got, expected)


def test_per_example_grads_float32_and_keywords():
    model, params, x, y, _ = _mlp()
    params, x = fnnet.tree.astype(params, np.float32), x.astype(np.float32)

    def loss(p, xi, yi, scale=1.0):
        return losses.mse(model.apply(p, xi[None]), ops.reshape(xi[:5], (1, 5)), "sum") * scale

    expected = _loop(lambda *a: fnnet.grad(loss)(*a, scale=2.0), len(x), lambda i: (params, x[i], y[i]))
    got = fnnet.per_example_grads(loss, params, x, y, scale=2.0)
    assert all(leaf.dtype == np.float32 for leaf in fnnet.tree.leaves(got))
    fnnet.tree.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_shared_values_on_the_batched_tape_and_closures():
    """A penalty on the params alone (no batched input: its VJP runs once per example), a batched value
    reaching ``grad`` through a closure, ``has_aux``, a param that gets no gradient, and Remat."""
    model, params, x, y, loss = _mlp()
    params = {"model": params, "unused": np.ones(3)}
    remat = Remat(model)

    def per_example(xi, yi):
        def penalized(p):
            data = losses.softmax_cross_entropy(remat.apply(p["model"], xi[None]), yi[None])
            weight = p["model"]["0"]["weight"]
            return data + 0.1 * ops.sum(weight * weight), data

        return fnnet.grad(penalized, has_aux=True)(params)

    expected = _loop(per_example, len(x), lambda i: (x[i], y[i]))
    got = fnnet.vmap(per_example)(x, y)
    _assert_equal(got, expected)
    np.testing.assert_array_equal(got[0]["unused"], np.zeros((7, 3)))


def test_batched_params_in_axes_tree_and_out_axes():
    """An ensemble: params batched by a tree in_axes (gradients w.r.t. batched leaves), examples on axis 1."""
    r = _rng()
    params = {"w": r.standard_normal((3, 2)), "b": r.standard_normal((4, 2))}
    x = r.standard_normal((3, 4))  # examples along axis 1

    def loss(p, xi):
        return ops.sum(ops.tanh(ops.linear(xi, p["w"], p["b"])))

    fn = fnnet.vmap(fnnet.value_and_grad(loss), in_axes=({"w": None, "b": 0}, 1), out_axes=(0, {"w": 2, "b": 0}))
    value, grads = fn(params, x)
    ref = [fnnet.value_and_grad(loss)({"w": params["w"], "b": params["b"][i]}, x[:, i]) for i in range(4)]
    _assert_equal(value, np.stack([v for v, _ in ref]))
    _assert_equal(grads, {"w": np.stack([g["w"] for _, g in ref], axis=2), "b": np.stack([g["b"] for _, g in ref])})


def test_out_axes_int_none_and_tree():
    x = _rng().standard_normal((4, 3))
    c = np.arange(2.0)

    def fn(xi):
        return {"y": xi * 2.0, "c": c, "zero": xi * 0.0}

    got = fnnet.vmap(fn, out_axes={"y": 1, "c": None, "zero": None})(x)
    np.testing.assert_array_equal(got["y"], (x * 2.0).T)
    assert got["c"] is c
    np.testing.assert_array_equal(got["zero"], np.zeros(3))
    assert fnnet.vmap(lambda xi: xi * 2.0, out_axes=-1)(x).shape == (3, 4)
    np.testing.assert_array_equal(fnnet.vmap(lambda xi: c, out_axes=1)(x), np.stack([c] * 4, axis=1))


def test_keyword_arguments_are_not_batched():
    x = _rng().standard_normal((4, 3))
    got = fnnet.vmap(lambda xi, scale: xi * scale)(x, scale=3.0)
    np.testing.assert_array_equal(got, x * 3.0)


def test_tuple_outputs_and_one_dimensional_batches():
    x = _rng().standard_normal(5).astype(np.float32)  # each example is a scalar
    fn = fnnet.vmap(lambda xi, c: (ops.exp(xi) * c, c + 1.0), in_axes=(0, None), out_axes=(0, 1))
    got = fn(x, np.ones(2, np.float32))
    np.testing.assert_array_equal(got[0], np.stack([ops.exp(xi) * np.ones(2, np.float32) for xi in x]))
    assert got[0].dtype == np.float32 and got[1].shape == (2, 5)


def test_a_user_primitive_with_its_own_batching_rule():
    cube = fnnet.primitive("test_vmap_batched_cube", lambda x: (x * x * x, (x,)),
                           lambda res, g: (3.0 * res[0] ** 2 * g,), override=True)
    cube.defbatch(lambda values, batched: cube.fwd(*values),
                  lambda res, g, batched, needs: cube.bwd(res, g))
    x = _rng().standard_normal((4, 3))
    fn = fnnet.grad(lambda xi: ops.sum(cube(xi)))
    _assert_equal(fnnet.vmap(fn)(x), _loop(fn, 4, lambda i: (x[i],)), bitwise=True)


# ------------------------------------------------------------------------------------------- fallback

def _cube():
    return fnnet.primitive("test_vmap_cube", lambda x: (x * x * x, (x,)), lambda res, g: (3.0 * res[0] ** 2 * g,),
                           override=True)


FALLBACKS = {  # what has no batching rule -> (per-example function, the warning's words)
    "primitive": (lambda xi: ops.sum(_cube()(xi) * xi), r"primitive 'test_vmap_cube' has no batching rule"),
    "advanced indexing": (lambda xi: ops.sum(xi[np.array([0, 0, 2])]), r"primitive 'gather_rows' has no batching"),
    "numpy function": (lambda xi: ops.sum(xi * np.asarray(fnnet.stop_gradient(xi))), r"a numpy function \(np.asarray"),
    "control flow": (lambda xi: ops.sum(xi) if ops.sum(xi) > 0 else ops.sum(-xi), r"Python control flow"),
    "float16": (lambda xi: ops.sum(xi * xi), r"multiply: float16 inputs are not batched"),
}


@pytest.mark.parametrize("name", sorted(FALLBACKS))
def test_fallback_warns_naming_the_cause_and_equals_the_loop_bit_for_bit(name):
    fn, words = FALLBACKS[name]
    x = _rng().standard_normal((4, 3)).astype(np.float16 if name == "float16" else np.float64)
    for f in (fn, fnnet.grad(fn)):
        with pytest.warns(FallbackWarning, match=r"^vmap\(.*\): " + words + r".*running the function once per"):
            got = fnnet.vmap(f)(x)
        _assert_equal(got, _loop(f, 4, lambda i: (x[i],)), bitwise=True)


def test_fallback_warns_once_per_call_site():
    x = _rng().standard_normal((4, 3))
    fn = fnnet.vmap(FALLBACKS["primitive"][0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for _ in range(3):
            fn(x)
    assert [type(w.message) for w in caught] == [FallbackWarning]


def test_grad_of_vmap_and_nested_vmap_run_the_loop():
    x = _rng().standard_normal((4, 3))
    with pytest.warns(FallbackWarning, match="traced by an enclosing grad"):
        g = fnnet.grad(lambda a: ops.sum(fnnet.vmap(lambda r: ops.sum(r * r))(a)))(x)
    np.testing.assert_allclose(g, 2.0 * x, rtol=1e-15)
    with pytest.warns(FallbackWarning, match="vmap inside a vmapped function"):
        got = fnnet.vmap(lambda a: fnnet.vmap(lambda b: a * b)(x[0]))(x)
    np.testing.assert_array_equal(got, x[:, None, :] * x[0][None, :, None])


def test_errors_in_the_function_are_the_loops():
    """A batched run that fails on bad input falls back to the loop, which raises its own message."""
    model, params, x, y, loss = _mlp()
    y = y.copy()
    y[3] = 9
    with pytest.raises(IndexError, match=r"^softmax_cross_entropy: labels\[0\] = 9 is out of range for 5"):
        fnnet.per_example_grads(loss, params, x, y)


# ---------------------------------------------------------------------------------------- bad axes

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
    with pytest.warns(FallbackWarning, match="Python control flow"), \
            pytest.raises(ValueError, match=r"returned .* for example 1 but .* for example 0"):
        fnnet.vmap(lambda xi: (xi,) if xi[0] > 0 else xi)(np.array([[-1.0], [1.0]]))
    with pytest.raises(ValueError, match=r"per_example_grads: give at least one batched argument"):
        fnnet.per_example_grads(lambda p: p, {})
