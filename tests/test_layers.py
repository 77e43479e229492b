"""Every layer against PyTorch (forward, input and parameter gradients, float64), shape inference,
gradient checks, configs, errors with paths, state handling, dynamic graphs and a user-defined layer."""

import json

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnnet
import fnnet.layers as L
import fnnet.ops as ops
from fnnet.layers.walking import is_leaf
from fnnet.testing import assert_close, check_grads

from .layer_cases import CASES, covered_layer_names, example_input

KEY = fnnet.random.key(0)
ids = [c.id for c in CASES]


def _subtree(nested, path):
    for part in path.split("/") if path else ():
        nested = nested[part]
    return nested


def _torch_entries(layer, params):
    """``(section, fnnet path, torch key, transpose)`` for every param and state entry of ``layer``: each
    leaf's ``torch_layout()`` at the leaf's path (name for name for a leaf without one, as fnnet.io does)."""
    for path, leaf, _ in L.walk(layer):
        if not is_leaf(leaf):
            continue
        layout = leaf.torch_layout()
        if layout is None:
            layout = [L.TorchParam(name) for name in _subtree(params, path)]
        prefix = path.replace("/", ".") + "." if path else ""
        for e in layout:
            if e.section != "ignored":
                yield e.section, f"{path}/{e.name}" if path else e.name, prefix + e.torch_name, e.transpose


def _copy_to_torch(layer, params, state, module):
    """Load fnnet ``params``/``state`` into the torch twin ``module``; every torch entry must be covered."""
    import torch

    new = {}
    for section, path, key, transpose in _torch_entries(layer, params):
        if section == "state" and not state:
            continue
        value = _subtree(params if section == "params" else state, path)
        new[key] = torch.tensor(value.T if transpose else value)
    full = module.state_dict()
    assert set(new) <= set(full), f"keys unknown to torch: {sorted(set(new) - set(full))}"
    assert all(k.endswith("num_batches_tracked") for k in set(full) - set(new)), sorted(set(full) - set(new))
    module.load_state_dict({**full, **new})


def _randomize(params, seed=1):
    rng = np.random.default_rng(seed)
    return fnnet.tree.map(lambda p: p + 0.3 * rng.standard_normal(p.shape), params)


def _state(case, dtype=np.float64):
    if not case.stateful:
        return None
    state = case.layer.init_state(case.in_shape, dtype)
    rng = np.random.default_rng(5)
    return fnnet.tree.map_with_path(
        lambda path, s: (s + 0.2 * rng.standard_normal(s.shape) if path.endswith("mean")
                         else s * rng.uniform(0.5, 1.5, s.shape)).astype(s.dtype), state)


def _apply(case, params, x, state):
    if state is None:
        return case.layer.apply(params, x, train=case.train, key=KEY), None
    return case.layer.apply(params, x, state=state, train=case.train, key=KEY)


def test_every_registered_layer_has_a_table_row():
    missing = sorted(set(L.registered_layers()) - covered_layer_names() - {"Scale"})
    assert not missing, f"layers without a row in tests/layer_cases.py: {missing}"


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_matches_torch_forward_and_gradients(case):
    torch = pytest.importorskip("torch")
    if case.torch is None:
        pytest.skip("no single PyTorch module equivalent (checked against composition in other tests)")
    params = _randomize(case.layer.init(KEY, case.in_shape, np.float64))
    state = _state(case)
    x = example_input(case)
    module = case.torch().double()
    _copy_to_torch(case.layer, params, state, module)
    module.train(case.train)
    u = np.random.default_rng(7).standard_normal(case.layer.out_shape(case.in_shape))

    def loss(p, xv):
        y, _ = _apply(case, p, xv, state)
        return ops.sum(y * u)

    tx = torch.tensor(x) if case.int_input else torch.tensor(x, requires_grad=True)
    ty = module(tx)
    y, new_state = _apply(case, params, x, state)
    assert_close(y, ty, rtol=1e-6, atol=1e-9, what=f"{case.id} forward")
    (ty * torch.tensor(u)).sum().backward()
    argnums = (0,) if case.int_input else (0, 1)
    grads = fnnet.grad(loss, argnums=argnums)(params, x)
    if not case.int_input:
        assert_close(grads[1], tx.grad, rtol=1e-6, atol=1e-9, what=f"{case.id} d/dx")
    gp = grads[0]
    torch_of = {(section, path): (key, transpose)
                for section, path, key, transpose in _torch_entries(case.layer, params)}
    torch_named = dict(module.named_parameters())
    for path, g in zip(fnnet.tree.paths(gp), fnnet.tree.leaves(gp)):
        key, transpose = torch_of["params", path]
        tgrad = torch_named[key].grad.numpy()
        assert_close(g, tgrad.T if transpose else tgrad, rtol=1e-6, atol=1e-9, what=f"{case.id} d/d{path}")
    if case.stateful and case.train:
        buffers = dict(module.named_buffers())
        for path, s in zip(fnnet.tree.paths(new_state), fnnet.tree.leaves(new_state)):
            key, _ = torch_of["state", path]
            assert_close(s, buffers[key], rtol=1e-6, atol=1e-9, what=f"{case.id} state {path}")


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_out_shape_matches_apply_and_float32(case):
    params = case.layer.init(KEY, case.in_shape)
    state = _state(case, np.float32)
    x = example_input(case, np.float32)
    y, _ = _apply(case, params, x, state)
    assert tuple(y.shape) == tuple(case.layer.out_shape(case.in_shape))
    assert y.dtype == np.float32
    batchless = (None, *case.in_shape[1:])
    assert case.layer.out_shape(batchless) == (None, *case.layer.out_shape(case.in_shape)[1:])


@pytest.mark.parametrize("case", [c for c in CASES if not c.int_input], ids=[c.id for c in CASES if not c.int_input])
def test_gradient_check_float64(case):
    params = _randomize(case.layer.init(KEY, case.in_shape, np.float64))
    state = _state(case)
    x = example_input(case)
    check_grads(lambda p, xv: _apply(case, p, xv, state)[0], (params, x), rtol=1e-4, atol=1e-7)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
       k=st.integers(1, 3), s=st.integers(1, 3), p=st.integers(0, 1), d=st.integers(1, 2), o=st.integers(1, 3))
def test_conv_and_pool_out_shape_hypothesis(n, c, h, w, k, s, p, d, o):
    shape = (n, c, h, w)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    layers = [L.Conv2D(o, k, stride=s, padding=p, dilation=d), L.AvgPool2D(k, s, min(p, k // 2)),
              L.MaxPool2D(k, s, min(p, k // 2)), L.Flatten(), L.GlobalAvgPool2D()]
    for layer in layers:
        try:
            expected = layer.out_shape(shape)
        except ValueError as e:
            assert "kernel spans" in str(e)
            continue
        params = layer.init(KEY, shape)
        assert layer.apply(params, x).shape == expected, layer


def test_config_round_trip_of_a_model_with_every_layer():
    model = L.Sequential([case.layer for case in CASES], names=[c.id for c in CASES])
    config = L.to_config(model)
    text = json.dumps(config)
    assert L.from_config(json.loads(text)) == model


def test_error_names_layer_path_and_shapes():
    model = L.Sequential([L.Flatten(), L.Linear(8), L.ReLU(), L.Sequential([L.Linear(4), L.Linear(2)])])
    params = model.init(KEY, (None, 3, 4))
    bad_params = fnnet.tree.map(lambda p: p, params)
    bad_params["3"]["1"]["weight"] = np.zeros((5, 2), np.float32)
    with pytest.raises(ValueError, match=r"3/1 \(Linear\): expected input \(\.\.\., 5\).*got shape \(2, 4\)"):
        model.apply(bad_params, np.ones((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"1 \(Linear\): expected input \(\.\.\., 12\).*got shape \(2, 10\)"):
        model.apply(params, np.ones((2, 2, 5), np.float32))


def test_params_mismatch_names_missing_and_extra_keys():
    model = L.Sequential([L.Linear(3), L.Linear(2)])
    params = model.init(KEY, (None, 4))
    with pytest.raises(ValueError, match=r"missing key\(s\) \['1'\]"):
        model.apply({"0": params["0"]}, np.ones((1, 4), np.float32))
    with pytest.raises(ValueError, match=r"0 \(Linear\): params do not match.*missing key\(s\) \['bias'\]"):
        model.apply({"0": {"weight": params["0"]["weight"]}, "1": params["1"]}, np.ones((1, 4), np.float32))
    with pytest.raises(ValueError, match=r"unexpected key\(s\) \['extra'\]"):
        model.apply({**params, "extra": {}}, np.ones((1, 4), np.float32))


@pytest.mark.parametrize("make, match", [
    (lambda: L.Linear(-1), "Linear: out_features must be a positive int, got -1"),
    (lambda: L.Linear(0), "out_features must be a positive int"),
    (lambda: L.Dropout(1.0), r"Dropout: rate .* must be in \[0, 1\), got 1.0"),
    (lambda: L.Dropout(-0.1), "must be in"),
    (lambda: L.Conv2D(4, 0), "Conv2D: kernel_size must be positive"),
    (lambda: L.Conv2D(4, 3, groups=3), "out_channels=4 must be divisible by groups=3"),
    (lambda: L.Conv2D(4, 3, stride=2, padding="same"), "padding='same' needs stride 1"),
    (lambda: L.MaxPool2D(2, padding=2), "at most half of the kernel size"),
    (lambda: L.BatchNorm(momentum=2.0), "momentum must be in"),
    (lambda: L.Embedding(0, 3), "num_embeddings must be a positive int"),
    (lambda: L.Sequential([L.Linear(2), "relu"]), r"layers\[1\] is not a layer"),
    (lambda: L.Conv2D(2, 5).out_shape((1, 1, 3, 3)), r"kernel spans 5 pixels .* padded input has only 3"),
    (lambda: L.Sequential([L.Conv2D(2, 3), L.Conv2D(2, 3)]).init(KEY, (1, 1, 4, 4)), r"1 \(Conv2D\): .*kernel spans 3"),
])
def test_invalid_hyperparameters_fail_early_with_names(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_dropout_needs_key_in_training_and_is_reproducible():
    layer = L.Dropout(0.5)
    x = np.ones((100, 50), np.float32)
    with pytest.raises(ValueError, match=r"key=fnnet.random.key\(seed\)"):
        layer.apply({}, x, train=True)
    assert layer.apply({}, x) is x
    a = layer.apply({}, x, key=KEY, train=True)
    b = layer.apply({}, x, key=KEY, train=True)
    c = layer.apply({}, x, key=fnnet.random.key(1), train=True)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert set(np.unique(a)) <= {0.0, 2.0}
    assert abs((a == 0).mean() - 0.5) < 0.02  # rate is the probability of dropping


def test_batchnorm_requires_state_and_matches_torch_over_5_steps():
    torch = pytest.importorskip("torch")
    layer = L.BatchNorm(momentum=0.1)
    shape = (8, 3, 4, 4)
    params = _randomize(layer.init(KEY, shape, np.float64))
    state = layer.init_state(shape, np.float64)
    with pytest.raises(ValueError, match="are state and must be passed in"):
        layer.apply(params, np.ones(shape))
    module = torch.nn.BatchNorm2d(3).double()
    _copy_to_torch(layer, params, state, module)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.standard_normal(shape) * 2 + 1
        y, state = layer.apply(params, x, state=state, train=True)
        ty = module(torch.tensor(x))
        assert_close(y, ty, rtol=1e-6, atol=1e-9)
    assert_close(state["mean"], module.running_mean, rtol=1e-10)
    assert_close(state["var"], module.running_var, rtol=1e-10)
    module.eval()
    x = rng.standard_normal(shape)
    y, same = layer.apply(params, x, state=state, train=False)
    assert_close(y, module(torch.tensor(x)), rtol=1e-6, atol=1e-9)
    assert same["mean"] is state["mean"] or np.array_equal(same["mean"], state["mean"])


def test_containers_split_keys_once_per_child_in_order():
    model = L.Sequential([L.Linear(3), L.Linear(3)])
    params = model.init(KEY, (None, 3))
    k0, k1 = fnnet.random.split(KEY)
    np.testing.assert_array_equal(params["0"]["weight"], L.Linear(3).init(k0, (None, 3))["weight"])
    np.testing.assert_array_equal(params["1"]["weight"], L.Linear(3).init(k1, (None, 3))["weight"])
    drop = L.Sequential([L.Dropout(0.5), L.Dropout(0.5)])
    x = np.ones((10, 10), np.float32)
    y = drop.apply({"0": {}, "1": {}}, x, key=KEY, train=True)
    expected = L.Dropout(0.5).apply({}, L.Dropout(0.5).apply({}, x, key=k0, train=True), key=k1, train=True)
    np.testing.assert_array_equal(y, expected)


def test_residual_parallel_fanout_match_explicit_composition():
    x = np.random.default_rng(0).standard_normal((3, 4))
    block = L.Sequential([L.Linear(4), L.Tanh()])
    res = L.Residual(block)
    p = res.init(KEY, x.shape, np.float64)
    np.testing.assert_allclose(res.apply(p, x), x + block.apply(p["block"], x))
    inc = L.Sequential([L.FanOut(2), L.Parallel([L.Linear(3), L.Linear(5)]), L.FanInConcat()])
    p = inc.init(KEY, x.shape, np.float64)
    expected = np.concatenate([x @ p["1"]["0"]["weight"] + p["1"]["0"]["bias"],
                               x @ p["1"]["1"]["weight"] + p["1"]["1"]["bias"]], axis=-1)
    np.testing.assert_allclose(inc.apply(p, x), expected)
    assert inc.out_shape((None, 4)) == (None, 8)


def test_dynamic_depth_model_under_grad():
    """A model whose depth is a runtime argument: Python control flow under grad."""
    block = L.Sequential([L.Linear(6), L.Tanh()])
    params = {"blocks": [block.init(k, (None, 6), np.float64) for k in fnnet.random.split(KEY, 4)]}
    x = np.random.default_rng(0).standard_normal((5, 6))

    def loss(p, depth):
        h = x
        for i in range(depth):
            h = block.apply(p["blocks"][i], h)
        return ops.mean(h * h)

    for depth in (1, 3):
        g = fnnet.grad(loss)(params, depth)
        used = [np.any(gb["0"]["weight"] != 0) for gb in g["blocks"]]
        assert used == [i < depth for i in range(4)]
        check_grads(lambda p: loss(p, depth), (params,), rtol=1e-5)


# ----------------------------------------------------------------------- a user-defined layer with its own op
def _scale_fwd(x, s):
    return x * s, (x, s)


def _scale_bwd(res, g):
    x, s = res
    return g * s, np.sum(g * x, axis=tuple(range(g.ndim - 1)))


scale_op = fnnet.primitive("test_scale_features", _scale_fwd, _scale_bwd, argnames=("x", "scale"), override=True)


@L.register
@attrs.frozen
class Scale(L.Layer):
    init_value: float = 1.0

    def init(self, key, in_shape, dtype=np.float32):
        return {"scale": np.full(in_shape[-1], self.init_value, dtype)}

    def forward(self, params, x, *, key=None, train=False):
        return scale_op(x, params["scale"])


def test_user_defined_layer_in_sequential_grad_registry_and_config():
    model = L.Sequential([L.Linear(3), Scale(2.0), L.Tanh()])
    assert L.get("Scale") is Scale
    assert L.from_config(json.loads(json.dumps(L.to_config(model)))) == model
    params = model.init(KEY, (None, 4), np.float64)
    x = np.random.default_rng(0).standard_normal((5, 4))
    check_grads(lambda p: model.apply(p, x), (params,))
    g = fnnet.grad(lambda p: ops.sum(model.apply(p, x)))(params)
    assert g["1"]["scale"].shape == (3,) and np.all(g["1"]["scale"] != 0)


def test_init_accepts_an_example_array():
    x = np.zeros((2, 1, 6, 6), np.float32)
    model = L.Sequential([L.Conv2D(2, 3), L.Flatten(), L.Linear(2)])
    a = model.init(KEY, x)
    b = model.init(KEY, x.shape)
    assert all(np.array_equal(u, v) for u, v in zip(fnnet.tree.leaves(a), fnnet.tree.leaves(b)))


def test_sequential_fuses_linear_relu_bitwise_identically():
    fused = L.Sequential([L.Linear(6), L.ReLU(), L.Linear(4), L.ReLU(), L.Linear(2)])
    assert fused._fused_activation == ("relu", None, "relu", None, None)
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    params = fused.init(KEY, x)

    def unfused(p, xv):
        h = xv
        for name, layer in zip(fused.child_names, fused.layers):
            h = layer.apply(p[name], h)
        return h

    np.testing.assert_array_equal(fused.apply(params, x), unfused(params, x))
    g1 = fnnet.grad(lambda p: ops.sum(fused.apply(p, x)))(params)
    g2 = fnnet.grad(lambda p: ops.sum(unfused(p, x)))(params)
    for a, b in zip(fnnet.tree.leaves(g1), fnnet.tree.leaves(g2)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"1 \(ReLU\): params do not match"):
        fused.apply({**params, "1": {"w": np.zeros(1)}}, x)


@pytest.mark.parametrize("groups", [1, 2])
def test_sequential_fuses_conv_relu_bitwise_identically(groups):
    """The fused Conv2D -> ReLU (whose backward masks the cotangent inside the convolution kernels, one
    sample at a time) gives bitwise the separate ops' output and gradients, the input's included, also
    where the pre-activation is NaN or exactly zero."""
    model = L.Sequential([L.Conv2D(4, 3, padding=1, groups=groups), L.ReLU(), L.MaxPool2D(2), L.Flatten(),
                          L.Linear(2)])
    assert model._fused_activation[:2] == ("relu", None)
    x = np.random.default_rng(1).standard_normal((3, 2, 6, 6)).astype(np.float32)
    x[1, :, 2, 3] = np.nan  # NaN outputs: the mask passes their cotangent, as relu_bwd does
    params = model.init(KEY, x)
    params["0"]["bias"][:] = 0.0
    x[2] = 0.0  # outputs exactly 0: masked

    def unfused(p, xv):
        h = xv
        for name, layer in zip(model.child_names, model.layers):
            h = layer.apply(p[name], h)
        return h

    np.testing.assert_array_equal(model.apply(params, x), unfused(params, x))
    g1 = fnnet.grad(lambda p, xv: ops.sum(model.apply(p, xv)), argnums=(0, 1))(params, x)
    g2 = fnnet.grad(lambda p, xv: ops.sum(unfused(p, xv)), argnums=(0, 1))(params, x)
    for a, b in zip(fnnet.tree.leaves(g1), fnnet.tree.leaves(g2)):
        np.testing.assert_array_equal(a, b)
