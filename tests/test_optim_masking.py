"""Optimizers on part of a tree: ``masked``, ``multi_transform``, ``set_to_zero``, the ``mask`` of ``adamw`` and
``add_weight_decay`` (fused and chained, against ``torch.optim.AdamW`` param groups), and the layer-driven masks
``fnnet.layers.param_labels`` / ``decay_mask``."""

import functools

import numpy as np
import pytest
import torch

import fnnet
from fnnet import layers as L
from fnnet import optim, tree

# ------------------------------------------------------------------------------------------ fixtures


def make_params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "layers": [
            {"weight": rng.standard_normal((4, 3)).astype(dtype), "bias": rng.standard_normal(3).astype(dtype)},
            {"weight": rng.standard_normal((3, 2)).astype(dtype), "bias": rng.standard_normal(2).astype(dtype)},
        ],
        "scale": np.asarray(rng.standard_normal(), dtype),     # a 0-d leaf
    }


MASK = {"layers": [{"weight": True, "bias": False}, {"weight": False, "bias": True}], "scale": True}


def make_grads(params, n, seed=1):
    rng = np.random.default_rng(seed)
    return [tree.map(lambda p: rng.standard_normal(p.shape).astype(p.dtype), params) for _ in range(n)]


def run(opt, params, grads):
    state = opt.init(params)
    for g in grads:
        updates, state = opt.update(g, state, params)
        params = optim.apply_updates(params, updates)
    return params, state


def select(t, mask, keep=True):
    """The leaves of ``t`` where ``mask == keep``, as a flat list (a tree of its own)."""
    return [x for x, m in zip(tree.leaves(t), tree.leaves(mask)) if m == keep]


# ------------------------------------------------------------------------------------------ masked


INNER = [
    ("adam", lambda: optim.adam(1e-2)),
    ("adam_chain", lambda: optim.adam(1e-2, fused=False)),
    ("sgd_momentum", lambda: optim.sgd(0.1, momentum=0.9)),
    ("adamw", lambda: optim.adamw(1e-2, weight_decay=0.1)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,inner", INNER, ids=[c[0] for c in INNER])
def test_masked_out_updates_pass_through_bit_identical_and_the_rest_equals_the_inner_optimizer_alone(name, inner,
                                                                                                     dtype):
    params = make_params(dtype)
    grads = make_grads(params, 5)
    opt = optim.masked(inner(), MASK)
    final, state = params, opt.init(params)
    for g in grads:
        updates, state = opt.update(g, state, final)
        for passed, incoming in zip(select(updates, MASK, False), select(g, MASK, False)):
            assert passed is incoming  # untouched, as in optax
        final = optim.apply_updates(final, updates)
    alone, _ = run(inner(), select(params, MASK), [select(g, MASK) for g in grads])
    for ours, theirs in zip(select(final, MASK), alone):
        np.testing.assert_array_equal(ours, theirs)
        assert ours.dtype == dtype


def test_masked_keeps_no_inner_state_for_masked_out_leaves():
    params = make_params()
    state = optim.masked(optim.adam(1e-3), MASK).init(params)
    assert isinstance(state, optim.MaskedState)
    kept = sum(x.size for x in select(params, MASK))
    moments = tree.leaves(state.inner_state.mu) + tree.leaves(state.inner_state.nu)
    assert sum(x.size for x in moments) == 2 * kept
    assert state.inner_state.mu["layers"][0]["bias"] is None and state.inner_state.mu["layers"][1]["weight"] is None


def test_masked_accepts_a_function_of_the_params_and_updates_without_params():
    params = make_params()
    grads = make_grads(params, 3)
    by_rank = functools.partial(tree.map, lambda p: p.ndim > 1)
    final, _ = run(optim.masked(optim.sgd(0.1), by_rank), params, grads)
    explicit, _ = run(optim.masked(optim.sgd(0.1), by_rank(params)), params, grads)
    tree.assert_allclose(final, explicit, rtol=0, atol=0)
    expected_bias = params["layers"][0]["bias"] + sum(g["layers"][0]["bias"] for g in grads)  # passed through
    np.testing.assert_allclose(final["layers"][0]["bias"], expected_bias, rtol=1e-12)
    opt = optim.masked(optim.sgd(0.1), by_rank)
    updates, _ = opt.update(grads[0], opt.init(params))  # the mask function then sees the updates
    assert updates["scale"] is grads[0]["scale"]
    np.testing.assert_array_equal(updates["layers"][1]["weight"], -0.1 * grads[0]["layers"][1]["weight"])


# ------------------------------------------------------------------------------------------ multi_transform


def test_multi_transform_equals_running_each_transformation_on_its_own_leaves():
    params = make_params()
    grads = make_grads(params, 6)
    labels = tree.map(lambda m: "adam" if m else "sgd", MASK)
    transforms = {"sgd": optim.sgd(0.05, momentum=0.9), "adam": optim.adam(1e-2)}
    final, state = run(optim.multi_transform(transforms, labels), params, grads)
    assert sorted(state.inner_states) == ["adam", "sgd"]
    for label, keep in (("adam", True), ("sgd", False)):
        alone, _ = run(transforms[label], select(params, MASK, keep), [select(g, MASK, keep) for g in grads])
        for ours, theirs in zip(select(final, MASK, keep), alone):
            np.testing.assert_array_equal(ours, theirs)
    sizes = {k: sum(x.size for x in tree.leaves(s)) for k, s in state.inner_states.items()}
    assert sizes["adam"] == 1 + 2 * sum(x.size for x in select(params, MASK, True))   # count + moments
    assert sizes["sgd"] == 1 + sum(x.size for x in select(params, MASK, False))       # count + buffer


def test_multi_transform_with_set_to_zero_freezes_a_group_and_labels_may_be_a_function():
    params = make_params()
    labels = functools.partial(tree.map_with_path, lambda path, p: "frozen" if path.startswith("layers/0") else "train")
    final, state = run(optim.multi_transform({"train": optim.adam(1e-2), "frozen": optim.set_to_zero()}, labels),
                       params, make_grads(params, 3))
    tree.assert_allclose(final["layers"][0], params["layers"][0], rtol=0, atol=0)
    assert not np.array_equal(final["layers"][1]["weight"], params["layers"][1]["weight"])
    assert state.inner_states["frozen"] == optim.EmptyState()


def test_set_to_zero_returns_zeros_of_each_leaf_dtype():
    params = make_params(np.float32)
    opt = optim.set_to_zero()
    updates, state = opt.update(params, opt.init(params))
    assert state == optim.EmptyState()
    for u, p in zip(tree.leaves(updates), tree.leaves(params)):
        assert u.dtype == np.float32 and u.shape == p.shape and not u.any()


# ------------------------------------------------------------------------------------------ mask on the decay


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "chain"])
def test_adamw_mask_matches_torch_adamw_param_groups(fused):
    params = make_params()
    grads = make_grads(params, 15)
    opt = optim.adamw(0.01, weight_decay=0.1, mask=MASK, fused=fused)
    leaves, treedef = tree.flatten(params)
    tensors = [torch.tensor(x, requires_grad=True) for x in leaves]
    flags = tree.leaves(MASK)
    topt = torch.optim.AdamW([{"params": [t for t, m in zip(tensors, flags) if m], "weight_decay": 0.1},
                              {"params": [t for t, m in zip(tensors, flags) if not m], "weight_decay": 0.0}],
                             lr=0.01)
    state = opt.init(params)
    for step, g in enumerate(grads):
        updates, state = opt.update(g, state, params)
        params = optim.apply_updates(params, updates)
        for t, gl in zip(tensors, tree.leaves(g)):
            t.grad = torch.tensor(gl)
        topt.step()
        expected = tree.unflatten(treedef, [t.detach().numpy() for t in tensors])
        tree.assert_allclose(params, expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adamw_mask_fused_agrees_with_chain_and_masked_out_leaves_take_plain_adam_steps(dtype):
    params = make_params(dtype)
    grads = make_grads(params, 6)
    fused, _ = run(optim.adamw(1e-2, weight_decay=0.1, mask=MASK), params, grads)
    chained, _ = run(optim.adamw(1e-2, weight_decay=0.1, mask=MASK, fused=False), params, grads)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    tree.assert_allclose(fused, chained, rtol=rtol, atol=1e-6 if dtype == np.float32 else 1e-14)
    plain, _ = run(optim.adam(1e-2), params, grads)
    decayed, _ = run(optim.adamw(1e-2, weight_decay=0.1), params, grads)
    for ours, adam in zip(select(fused, MASK, False), select(plain, MASK, False)):
        np.testing.assert_array_equal(ours, adam)   # the same fused kernel with a decay rate of 0
    for ours, adamw in zip(select(fused, MASK, True), select(decayed, MASK, True)):
        np.testing.assert_array_equal(ours, adamw)


def test_adamw_mask_stays_on_the_fused_path(monkeypatch):
    from fnnet.optim import alias

    calls = []
    real = alias.K.adam_step
    monkeypatch.setattr(alias.K, "adam_step", lambda *a: calls.append(a[-2]) or real(*a))  # a[-1]: apply
    params = make_params()
    opt = optim.adamw(1e-2, weight_decay=0.1, mask=MASK)
    opt.update(make_grads(params, 1)[0], opt.init(params), params)
    assert calls == [0.0, 0.1, 0.1, 0.0, 0.1]  # one fused pass per leaf (flatten order: bias, weight), 0 where masked


def test_add_weight_decay_mask_decays_only_masked_in_leaves():
    params = make_params()
    g = make_grads(params, 1)[0]
    dec = optim.add_weight_decay(0.5, mask=MASK)
    updates, _ = dec.update(g, dec.init(params), params)
    for u, gl, p, m in zip(*(tree.leaves(t) for t in (updates, g, params, MASK))):
        np.testing.assert_allclose(u, gl + 0.5 * p if m else gl, rtol=1e-15)


# ------------------------------------------------------------------------------------------ masks from layers


def _model():
    block = L.Sequential([L.LayerNorm(), L.Linear(8), L.GELU(), L.Linear(4, use_bias=False)])
    return L.Sequential([L.Linear(4), L.Residual(block), L.Remat(L.Sequential([L.RMSNorm(), L.Linear(4)])),
                         L.BatchNorm(track_running_stats=False), L.Linear(3)])


def test_decay_mask_comes_from_the_layers():
    model = _model()
    params = model.init(fnnet.random.key(0), (None, 5))
    mask = L.decay_mask(model, params)
    assert mask == {
        "0": {"bias": False, "weight": True},
        "1": {"block": {"0": {"bias": False, "weight": False}, "1": {"bias": False, "weight": True}, "2": {},
                        "3": {"weight": True}}},
        "2": {"0": {"weight": False}, "1": {"bias": False, "weight": True}},
        "3": {"bias": False, "weight": False},
        "4": {"bias": False, "weight": True},
    }
    conv = L.Sequential([L.Embedding(10, 6), L.Reshape((3, 1, 2)), L.Conv2D(2, 1), L.GroupNorm(2),
                         L.InstanceNorm(affine=True)])
    cparams = conv.init(fnnet.random.key(1), (None,))
    assert L.decay_mask(conv, cparams) == {"0": {"weight": True}, "1": {}, "2": {"bias": False, "weight": True},
                                           "3": {"bias": False, "weight": False},
                                           "4": {"bias": False, "weight": False}}


def test_param_labels_gives_path_layer_and_name():
    model = _model()
    params = model.init(fnnet.random.key(0), (None, 5))
    labels = L.param_labels(model, params, lambda path, layer, name: f"{type(layer).__name__}:{name}:{path}")
    assert labels["1"]["block"]["0"]["weight"] == "LayerNorm:weight:1/block/0/weight"
    assert labels["2"]["0"]["weight"] == "RMSNorm:weight:2/0/weight"
    single = L.Linear(2)
    assert L.param_labels(single, single.init(fnnet.random.key(0), (None, 3)), lambda p, layer, n: p) == {
        "bias": "bias", "weight": "weight"}


def test_decay_mask_drives_adamw_in_one_line():
    model = _model()
    params = tree.map(lambda p: p.astype(np.float64), model.init(fnnet.random.key(0), (None, 5)))
    x = np.random.default_rng(0).standard_normal((6, 5))

    def loss(p):
        return fnnet.ops.mean(model.apply(p, x, train=True) ** 2)

    opt = optim.adamw(1e-2, weight_decay=0.5, mask=functools.partial(L.decay_mask, model))
    reference = optim.multi_transform({"decay": optim.adamw(1e-2, weight_decay=0.5), "plain": optim.adam(1e-2)},
                                      tree.map(lambda m: "decay" if m else "plain", L.decay_mask(model, params)))
    p1 = p2 = params
    s1, s2 = opt.init(p1), reference.init(p2)
    for _ in range(3):
        u1, s1 = opt.update(fnnet.grad(loss)(p1), s1, p1)
        u2, s2 = reference.update(fnnet.grad(loss)(p2), s2, p2)
        p1, p2 = optim.apply_updates(p1, u1), optim.apply_updates(p2, u2)
    tree.assert_allclose(p1, p2, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------ errors


def test_errors_are_clear():
    params = make_params()
    g = make_grads(params, 1)[0]
    with pytest.raises(ValueError, match=r"fnnet.optim.masked: mask must have the structure of the params"):
        optim.masked(optim.sgd(0.1), {"layers": [{"weight": True}]}).init(params)
    bad = tree.map(lambda m: 1.0 if m else 0.0, MASK)
    with pytest.raises(TypeError, match=r"mask leaf at 'layers/0/bias' must be a bool .*got float 0.0"):
        optim.masked(optim.sgd(0.1), bad).init(params)
    with pytest.raises(TypeError, match=r"fnnet.optim.adamw: mask must be a tree of bools .*got str 'bias'"):
        optim.adamw(1e-3, mask="bias")
    with pytest.raises(ValueError, match=r"fnnet.optim.adamw: mask must have the structure of the params"):
        opt = optim.adamw(1e-3, mask={"w": True})
        opt.update(g, opt.init(params), params)
    with pytest.raises(ValueError, match=r"fnnet.optim.add_weight_decay: mask must have the structure"):
        dec = optim.add_weight_decay(0.1, mask=[True])
        dec.update(g, dec.init(params), params)
    with pytest.raises(TypeError, match=r"masked: inner must be a GradientTransformation, got function; call"):
        optim.masked(optim.adam, MASK)
    with pytest.raises(TypeError, match=r"opt_state must be the MaskedState"):
        optim.masked(optim.sgd(0.1), MASK).update(g, optim.sgd(0.1).init(params), params)
    labels = tree.map(lambda m: "a" if m else "b", MASK)
    with pytest.raises(ValueError, match=r"labels leaf at 'layers/0/bias' is 'b', which is not a key of "
                                         r"transforms \['a'\]; add a transformation"):
        optim.multi_transform({"a": optim.sgd(0.1)}, labels).init(params)
    with pytest.raises(ValueError, match=r"transforms must be a non-empty dict"):
        optim.multi_transform({}, labels)
    with pytest.raises(TypeError, match=r"transforms\['a'\] must be a GradientTransformation"):
        optim.multi_transform({"a": optim.sgd}, labels)
    with pytest.raises(TypeError, match=r"the keys of transforms must be str labels, got 1"):
        optim.multi_transform({1: optim.sgd(0.1)}, labels)
    opt = optim.multi_transform({"a": optim.sgd(0.1), "b": optim.adam(0.1)}, labels)
    with pytest.raises(ValueError, match=r"opt_state holds states for labels \['a'\], but the transforms are"):
        opt.update(g, optim.MultiTransformState({"a": optim.sgd(0.1).init(params)}), params)


def test_param_labels_errors_name_the_path():
    model = _model()
    params = model.init(fnnet.random.key(0), (None, 5))
    extra = {**params, "9": {"weight": np.zeros(2)}}
    with pytest.raises(ValueError, match=r"param_labels: params leaf '9/weight' belongs to no layer of the model"):
        L.decay_mask(model, extra)
    missing = {k: v for k, v in params.items() if k != "4"}
    with pytest.raises(ValueError, match=r"params have no entry '4' for the Linear at that path"):
        L.decay_mask(model, missing)


def test_partial_states_survive_a_checkpoint(tmp_path):
    params = make_params()
    g = make_grads(params, 1)[0]
    labels = tree.map(lambda m: "adam" if m else "sgd", MASK)
    multi = optim.multi_transform({"adam": optim.adam(1e-2), "sgd": optim.sgd(0.1, momentum=0.9)}, labels)
    masked = optim.masked(optim.adam(1e-2), MASK)
    states = (multi.update(g, multi.init(params), params)[1], masked.update(g, masked.init(params), params)[1])
    fnnet.io.save(tmp_path / "ck.npz", params, opt_state=states)
    loaded = fnnet.io.load(tmp_path / "ck.npz").opt_state
    assert loaded[1].inner_state.mu["layers"][0]["bias"] is None
    for opt, before, after in zip((multi, masked), states, loaded):
        tree.assert_allclose(opt.update(g, after, params)[0], opt.update(g, before, params)[0], rtol=0, atol=0)
