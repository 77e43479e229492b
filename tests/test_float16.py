"""float16 storage and mixed precision: every layer in float16, float16 gradients, memory halved, the
precision policy and casts, dynamic loss scaling, the mixed-precision step and a short float16 digits run."""

import json

import numpy as np
import pytest

import fnnet
import fnnet.layers as L
import fnnet.ops as ops
from fnnet.examples import digits
from fnnet.precision import (
    DynamicLossScale, MixedPrecisionState, Policy, all_finite, cast, make_mixed_precision_train_step,
)

from .layer_cases import CASES, example_input

KEY = fnnet.random.key(0)
F16 = np.float16
# float16 keeps 11 significant bits (eps 2**-10 ~ 1e-3); every op rounds its output once, and a few ops in a
# row plus accumulations over ~10-50 terms give errors of a few eps: 1e-2 covers them with margin.
RTOL = ATOL = 1e-2


def _to16(t):
    return cast(t, F16)


def _apply(case, params, x, state):
    if state is None:
        return case.layer.apply(params, x, train=case.train, key=KEY), None
    return case.layer.apply(params, x, state=state, train=case.train, key=KEY)


def _inputs(case):
    params = case.layer.init(KEY, case.in_shape)
    state = case.layer.init_state(case.in_shape) if case.stateful else None
    if state is not None:  # non-trivial running statistics
        rng = np.random.default_rng(5)
        state = fnnet.tree.map_with_path(
            lambda path, s: (s + 0.2 * rng.standard_normal(s.shape) if path.endswith("mean")
                             else s * rng.uniform(0.5, 1.5, s.shape)).astype(np.float32), state)
    return params, state, example_input(case, np.float32)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_layer_in_float16_matches_float32(case):
    params, state, x = _inputs(case)
    y32, s32 = _apply(case, params, x, state)
    y16, s16 = _apply(case, _to16(params), _to16(x), _to16(state))
    assert y16.dtype == F16 and y16.shape == y32.shape
    np.testing.assert_allclose(y16.astype(np.float32), y32, rtol=RTOL, atol=ATOL, err_msg=case.id)
    if state is not None:
        for a, b in zip(fnnet.tree.leaves(s16), fnnet.tree.leaves(s32)):
            assert a.dtype == F16
            np.testing.assert_allclose(a.astype(np.float32), b, rtol=RTOL, atol=ATOL, err_msg=case.id)


GRAD_CASES = [c for c in CASES if c.id in ("Linear", "Conv2D-s2p1", "BatchNorm-4d-train", "LayerNorm", "GELU",
                                           "Softmax", "MaxPool2D", "Sequential-cnn", "Remat-cnn-train")]


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c.id for c in GRAD_CASES])
def test_float16_gradients_match_float32(case):
    params, state, x = _inputs(case)
    u = np.random.default_rng(7).standard_normal(case.layer.out_shape(case.in_shape)).astype(np.float32)

    def loss(p, xv, s, uv):
        return ops.sum(_apply(case, p, xv, s)[0] * uv)

    g32 = fnnet.grad(loss, argnums=(0, 1))(params, x, state, u)
    g16 = fnnet.grad(loss, argnums=(0, 1))(_to16(params), _to16(x), _to16(state), _to16(u))
    for path, a, b in zip(fnnet.tree.paths(g32), fnnet.tree.leaves(g16), fnnet.tree.leaves(g32)):
        assert a.dtype == F16, path
        scale = max(float(np.max(np.abs(b))), 1.0)
        np.testing.assert_allclose(a.astype(np.float32), b, rtol=RTOL, atol=ATOL * scale, err_msg=f"{case.id} {path}")


def test_dropout_mask_is_the_same_in_float16():
    x = np.random.default_rng(0).standard_normal((20, 30)).astype(np.float32)
    y32 = L.Dropout(0.3).apply({}, x, key=KEY, train=True)
    y16 = L.Dropout(0.3).apply({}, x.astype(F16), key=KEY, train=True)
    assert y16.dtype == F16
    np.testing.assert_array_equal(y16 == 0, y32 == 0)
    np.testing.assert_allclose(y16.astype(np.float32), y32, rtol=1e-3)


def test_params_and_activation_memory_halved():
    model = digits.build_model(8)
    params = model.init(KEY, (None, 1, 8, 8))
    assert fnnet.tree.nbytes(Policy().cast_to_compute(params)) * 2 == fnnet.tree.nbytes(params)
    mlp = L.Sequential([L.Linear(256), L.ReLU(), L.Linear(256), L.GELU(), L.LayerNorm(), L.Linear(10)])
    params = mlp.init(KEY, (None, 128))
    x = np.random.default_rng(0).standard_normal((64, 128)).astype(np.float32)
    y = np.arange(64) % 10
    peaks = {}
    for dtype in (np.float32, F16):
        p, xv = cast(params, dtype), cast(x, dtype)
        fnnet.grad(lambda q: fnnet.losses.softmax_cross_entropy(mlp.apply(q, xv), y))(p)
        peaks[dtype] = fnnet.last_tape_stats()["peak_residual_bytes"]
    assert 1.9 <= peaks[np.float32] / peaks[F16] <= 2.0, peaks


# ------------------------------------------------------------------------------------------ policy, casts
def test_cast_touches_only_floating_leaves_and_is_differentiable():
    t = {"w": np.ones((2, 3), np.float32), "labels": np.arange(3), "key": KEY, "none": None, "lr": 0.5,
         "s": np.float32(2.0)}
    c = cast(t, F16)
    assert c["w"].dtype == F16 and c["s"].dtype == F16
    assert c["labels"] is t["labels"] and c["key"] is t["key"] and c["none"] is None and c["lr"] == 0.5
    same = cast(t, np.float32)
    assert same["w"] is t["w"]  # no copy when the dtype already matches
    halves = np.arange(-2048, 2048, dtype=np.int32).astype(F16)
    np.testing.assert_array_equal(cast(cast(halves, np.float32), F16), halves)  # exact round trip

    def loss(w):
        return ops.sum(cast(w, np.float32) * np.float32(3.0))

    g = fnnet.grad(loss)(np.ones(4, F16))
    assert g.dtype == F16 and np.all(g == 3.0)
    with pytest.raises(TypeError, match="expected np.float16, np.float32 or np.float64, got"):
        cast(t, np.int32)
    with pytest.raises(TypeError, match="expected np.float16"):
        Policy(compute_dtype="int8")


def test_policy_defaults_and_casts():
    policy = Policy()
    assert (policy.param_dtype, policy.compute_dtype, policy.output_dtype) == (np.float32, F16, np.float32)
    assert Policy("float32", "float16", "float32") == policy
    x = np.ones((2, 2), np.float32)
    assert policy.cast_to_compute(x).dtype == F16
    assert policy.cast_to_param(policy.cast_to_compute(x)).dtype == np.float32
    assert policy.cast_to_output(x.astype(F16)).dtype == np.float32


# ----------------------------------------------------------------------------------------- loss scaling
def test_dynamic_loss_scale_is_a_pure_record():
    ls = DynamicLossScale(scale=2.0 ** 15, growth_interval=3, factor=2)
    assert ls.value == 32768.0 and ls.counter == 0
    backed_off = ls.adjust(False)
    assert backed_off.value == 16384.0 and backed_off.counter == 0 and ls.value == 32768.0  # ls unchanged
    s = ls
    for i in range(2):
        s = s.adjust(True)
        assert s.value == 32768.0 and s.counter == i + 1
    s = s.adjust(True)
    assert s.value == 65536.0 and s.counter == 0  # grown after growth_interval finite steps
    assert s.adjust(True).adjust(False).counter == 0
    assert DynamicLossScale(scale=2.0, min_scale=1.0).adjust(False).adjust(False).value == 1.0
    grads = {"a": np.array([1.5, -3.0], np.float32), "b": np.array([0.25], np.float64)}
    scaled = fnnet.tree.map(lambda g: g * g.dtype.type(ls.value), grads)
    fnnet.tree.assert_allclose(ls.unscale(scaled), grads, rtol=0, atol=0)
    assert ls.unscale(scaled)["a"].dtype == np.float32
    assert float(ls.scale(np.float32(2.0))) == 65536.0
    for bad, match in ((dict(scale=0.0), "scale must be > 0"), (dict(factor=1.0), "factor must be > 1"),
                       (dict(growth_interval=0), "growth_interval must be a positive int")):
        with pytest.raises(ValueError, match=match):
            DynamicLossScale(**bad)


def test_all_finite():
    assert all_finite({"a": np.ones(3, np.float32), "b": [np.zeros((2, 2), F16)], "i": np.arange(3)})
    assert not all_finite({"a": np.ones(3, np.float32), "b": np.array([1.0, np.nan], np.float32)})
    assert not all_finite([np.array([np.inf], F16)])
    assert not all_finite(cast(np.array([70000.0], np.float32), F16))  # overflowed on the cast
    assert all_finite({}) and all_finite(np.zeros(0, np.float32))


def _setup(seed=0):
    model = L.Sequential([L.Conv2D(4, 3, padding=1), L.BatchNorm(), L.ReLU(), L.Flatten(), L.Dropout(0.1),
                          L.Linear(5)])
    shape = (16, 1, 6, 6)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.integers(0, 5, 16)
    return model, model.init(KEY, shape), model.init_state(shape), x, y


def test_overflow_skips_the_update_and_halves_the_scale_then_training_resumes():
    model, params, state, x, y = _setup()
    opt = fnnet.optim.adam(1e-2)
    step = make_mixed_precision_train_step(model, fnnet.losses.softmax_cross_entropy, opt, Policy(),
                                           DynamicLossScale(scale=2.0 ** 40, growth_interval=1000))
    opt_state = step.init(params)
    assert isinstance(opt_state, MixedPrecisionState)
    p, s, o, metrics = step(params, state, opt_state, x, y, KEY)
    assert metrics["skipped"] == 1.0 and metrics["loss_scale"] == 2.0 ** 40
    assert o.loss_scale.value == 2.0 ** 39
    for a, b in ((p, params), (s, state), (o.opt_state, opt_state.opt_state)):
        fnnet.tree.assert_allclose(a, b, rtol=0, atol=0)  # nothing changed but the scale
    skipped = 1
    for i in range(40):
        p, s, o, metrics = step(p, s, o, x, y, fnnet.random.fold_in(KEY, i))
        if not metrics["skipped"]:
            break
        skipped += 1
    assert not metrics["skipped"] and o.loss_scale.value == 2.0 ** (40 - skipped) and o.loss_scale.counter == 1
    assert 2.0 ** 10 <= o.loss_scale.value <= 2.0 ** 30  # backed off to a scale float16 gradients can hold
    assert all(leaf.dtype == np.float32 for leaf in fnnet.tree.leaves((p, s)))
    assert not fnnet.tree.allclose(p, params)


def test_scale_grows_after_the_interval_and_the_loss_decreases():
    model, params, state, x, y = _setup(1)
    opt = fnnet.optim.adam(1e-2)
    step = make_mixed_precision_train_step(model, fnnet.losses.softmax_cross_entropy, opt,
                                           loss_scale=DynamicLossScale(scale=256.0, growth_interval=3))
    p, s, o = params, state, step.init(params)
    scales, losses = [], []
    for i in range(7):
        p, s, o, metrics = step(p, s, o, x, y, fnnet.random.fold_in(KEY, i))
        assert metrics["skipped"] == 0.0
        scales.append(metrics["loss_scale"])
        losses.append(metrics["loss"])
    assert scales == [256.0] * 3 + [512.0] * 3 + [1024.0]
    assert losses[-1] < losses[0]


def test_float32_policy_without_scaling_equals_the_plain_step():
    model, params, state, x, y = _setup(2)
    opt = fnnet.optim.sgd(0.1)
    plain = fnnet.train.make_train_step(model, fnnet.losses.softmax_cross_entropy, opt)
    mixed = make_mixed_precision_train_step(model, fnnet.losses.softmax_cross_entropy, opt,
                                            Policy(np.float32, np.float32, np.float32),
                                            DynamicLossScale(scale=1.0))
    a = plain(params, state, opt.init(params), x, y, KEY)
    b = mixed(params, state, mixed.init(params), x, y, KEY)
    fnnet.tree.assert_allclose(a[0], b[0], rtol=0, atol=0)
    fnnet.tree.assert_allclose(a[1], b[1], rtol=0, atol=0)
    assert a[3]["loss"] == b[3]["loss"] and a[3]["accuracy"] == b[3]["accuracy"]
    with pytest.raises(TypeError, match="opt_state must be a MixedPrecisionState; create it with step.init"):
        mixed(params, state, opt.init(params), x, y, KEY)


def test_mixed_precision_step_is_driven_by_run_epoch():
    model, params, state, x, y = _setup(3)
    opt = fnnet.optim.sgd(0.05)
    step = make_mixed_precision_train_step(model, fnnet.losses.softmax_cross_entropy, opt)
    p, s, o, metrics = fnnet.train.run_epoch(step, params, state, step.init(params), x, y, KEY, batch_size=8)
    assert set(metrics) == {"loss", "accuracy", "loss_scale", "skipped"}
    assert isinstance(o, MixedPrecisionState) and metrics["skipped"] == 0.0


def test_float16_digits_short_run_is_close_to_float32(tmp_path, capsys):
    acc16 = digits.main(["--out", str(tmp_path / "f16"), "--epochs", "4", "--seed", "1", "--dtype", "float16",
                         "--no-progress"])
    acc32 = digits.main(["--out", str(tmp_path / "f32"), "--epochs", "4", "--seed", "1", "--no-progress"])
    out = capsys.readouterr().out
    assert acc16 >= 0.93 and abs(acc16 - acc32) <= 0.03, out
    ckpt = fnnet.io.load(tmp_path / "f16" / "weights.npz")
    assert all(leaf.dtype == np.float32 for leaf in fnnet.tree.leaves(ckpt["params"]))  # master weights
    assert ckpt.metadata["dtype"] == "float16" and ckpt.metadata["loss_scale"] > 0
    assert json.loads((tmp_path / "f16" / "metrics.json").read_text())["dtype"] == "float16"


def test_in_place_changes_to_a_half_output_are_seen_by_the_next_op():
    x = np.linspace(-1, 2, 8, dtype=np.float32).astype(np.float16)
    y = ops.relu(x)
    y[...] = 0
    np.testing.assert_array_equal(ops.add(y, np.zeros_like(y)), np.zeros(8, np.float16))
    y = ops.relu(x)
    y[2:5].fill(7)  # through a view
    expected = y.astype(np.float32) * 2
    np.testing.assert_array_equal(ops.multiply(y, np.full_like(y, 2)), expected.astype(np.float16))
    y = ops.relu(x)
    np.multiply(y, 0, out=y)
    assert not ops.sum(y)
    h = ops.tanh(x)
    h /= 4
    np.testing.assert_array_equal(ops.tanh(h), np.tanh(h.astype(np.float32)).astype(np.float16))


def test_half_gradient_zeroed_in_place_between_steps_is_not_reused():
    from fnnet.layers import Linear, ReLU, Sequential

    model = Sequential([Linear(8), ReLU(), Linear(4)])
    params = fnnet.tree.map(lambda a: a.astype(np.float16), model.init(fnnet.random.key(0), (None, 6)))
    x = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float16)
    loss = lambda p: ops.sum(model.apply(p, x))
    first = fnnet.grad(loss)(params)
    fnnet.tree.map(lambda g: g.fill(0), first)
    second = fnnet.grad(loss)(params)
    third = fnnet.grad(loss)(params)
    for a, b in zip(fnnet.tree.leaves(second), fnnet.tree.leaves(third)):
        np.testing.assert_array_equal(a, b)
        assert a.any()
