"""The mixed-precision step (jitted and eager) against the eager sequence it stands for: bitwise the same
params, state, optimizer state, loss scale and metrics over steps that overflow, skip, grow the scale and
update; and the fused unscale pass against cast + unscale + all_finite, leaf by leaf."""

import numpy as np
import pytest

import fnnet
import fnnet.layers as L
from fnnet import optim
from fnnet.precision import (
    DynamicLossScale, MixedPrecisionState, Policy, all_finite, cast, make_mixed_precision_train_step,
)
from fnnet.train import accuracy

KEY = fnnet.random.key(0)


def _reference_step(model, loss_fn, optimizer, policy):
    """The mixed-precision step written out eagerly, op by op, as fnnet.precision's docstring describes it."""

    def objective(params, state, x, y, key, scale):
        out, new_state = model.apply(params, x, state=state, key=key, train=True)
        out = policy.cast_to_output(out)
        loss = loss_fn(out, y)
        return scale.scale(loss), (loss, new_state, out)

    loss_and_grad = fnnet.value_and_grad(objective, has_aux=True)

    def step(params, state, opt_state, x, y, key):
        scale = opt_state.loss_scale
        (_, (loss, new_state, out)), grads = loss_and_grad(
            policy.cast_to_compute(params), policy.cast_to_compute(state), policy.cast_to_compute(x),
            policy.cast_to_output(y), key, scale)
        grads = scale.unscale(policy.cast_to_param(grads))
        finite = all_finite(grads) and bool(np.isfinite(loss))
        metrics = {"loss": float(loss), "loss_scale": scale.value, "skipped": 0.0 if finite else 1.0,
                   "accuracy": accuracy(out, y)}
        if finite:
            updates, inner = optimizer.update(grads, opt_state.opt_state, params)
            params = optim.apply_updates(params, updates)
            state = policy.cast_to_param(new_state)
        else:
            inner = opt_state.opt_state
        return params, state, MixedPrecisionState(inner, scale.adjust(finite)), metrics

    return step


def _same(a, b):
    la, lb = fnnet.tree.leaves(a), fnnet.tree.leaves(b)
    assert fnnet.tree.structure(a) == fnnet.tree.structure(b) and len(la) == len(lb)
    for u, v in zip(la, lb):
        u, v = np.asarray(u), np.asarray(v)
        assert u.dtype == v.dtype and u.shape == v.shape
        np.testing.assert_array_equal(u.reshape(-1).view(np.uint8), v.reshape(-1).view(np.uint8))  # bits


@pytest.mark.parametrize("jit", [True, False], ids=["jit", "eager"])
def test_step_is_bitwise_the_eager_sequence_through_overflow_skip_growth_and_updates(jit):
    model = L.Sequential([L.Conv2D(4, 3, padding=1), L.BatchNorm(), L.ReLU(), L.Flatten(), L.Dropout(0.1),
                          L.Linear(5)])
    shape = (16, 1, 6, 6)
    rng = np.random.default_rng(0)
    params, state = model.init(KEY, shape), model.init_state(shape)
    opt = optim.adam(1e-2)
    loss_fn = fnnet.losses.softmax_cross_entropy
    scale = DynamicLossScale(scale=2.0 ** 20, growth_interval=2)  # overflows, backs off, then grows
    step = make_mixed_precision_train_step(model, loss_fn, opt, Policy(), scale, jit=jit)
    reference = _reference_step(model, loss_fn, opt, Policy())
    ours = theirs = (params, state, step.init(params))
    skipped = []
    for i in range(12):
        x = rng.standard_normal(shape).astype(np.float32)
        y = rng.integers(0, 5, 16)
        *ours, m_ours = step(*ours, x, y, fnnet.random.fold_in(KEY, i))
        *theirs, m_theirs = reference(*theirs, x, y, fnnet.random.fold_in(KEY, i))
        _same(ours[:2], theirs[:2])
        _same(ours[2].opt_state, theirs[2].opt_state)
        assert ours[2].loss_scale == theirs[2].loss_scale
        assert m_ours == m_theirs
        skipped.append(m_ours["skipped"])
    assert skipped[0] == 1.0 and 0.0 in skipped  # the run covered skipped and applied updates
    assert ours[2].loss_scale.value > 2.0 ** 20 / 2 ** sum(skipped)  # and a growth after the back-off


def _leaves16(rng):
    g = rng.standard_normal(300).astype(np.float16)
    return {"w": g.reshape(20, 15), "b": g[:7].copy(), "t": g[::3], "empty": np.zeros((0, 4), np.float16),
            "n": np.arange(3), "s": np.float16(2.5)}


@pytest.mark.parametrize("bad", [None, np.inf, -np.inf, np.nan], ids=["finite", "inf", "-inf", "nan"])
def test_fused_unscale_matches_cast_unscale_and_all_finite(bad):
    from fnnet.precision import _unscaled_gradients

    rng = np.random.default_rng(1)
    grads = _leaves16(rng)
    if bad is not None:
        grads["b"][3] = bad
    for scale in (2.0 ** 15, 3.0, 0.5):
        ls = DynamicLossScale(scale=scale)
        expected = ls.unscale(cast(grads, np.float32))
        got, finite = _unscaled_gradients(grads, np.asarray(1.0 / scale), np.float32)
        _same(got, expected)
        assert finite.dtype == np.bool_ and bool(finite) == all_finite(expected) == (bad is None)
    got, finite = _unscaled_gradients(grads, np.asarray(0.25), np.float64)  # not float16 -> float32: no fusion
    _same(got, DynamicLossScale(scale=4.0).unscale(cast(grads, np.float64)))


@pytest.mark.parametrize("bad", [None, np.inf, np.nan], ids=["finite", "inf", "nan"])
def test_jit_specialisation_of_the_unscale_is_bitwise_the_host_function(bad):
    """The flat form a jit plan replays (one kernel per leaf) gives the host function's leaves and finite
    flag bitwise, strided and empty leaves included; it declines trees that are not all float16."""
    from fnnet import tree
    from fnnet.precision import _unscale_all

    grads = {k: v for k, v in _leaves16(np.random.default_rng(2)).items() if k not in ("n", "s")}
    if bad is not None:
        grads["t"][4] = bad
    inverse = np.asarray(1.0 / 3.0)
    fast = _unscale_all.fnnet_specialize(grads, inverse, np.float32)
    leaves = [*tree.leaves(grads), inverse, np.float32]
    expected_grads, expected_finite = _unscale_all(grads, inverse, np.float32)
    got = fast(leaves)
    _same(tree.unflatten(tree.structure(expected_grads), got[:-1]), expected_grads)
    assert got[-1].dtype == np.bool_ and bool(got[-1]) == bool(expected_finite) == (bad is None)
    assert _unscale_all.fnnet_specialize({**grads, "f": np.ones(2, np.float32)}, inverse, np.float32) is None
    assert _unscale_all.fnnet_specialize(grads, inverse, np.float64) is None


def test_half_residuals_that_reshape_an_input_or_the_output_are_stored_without_a_copy():
    from fnnet.autodiff import half
    from fnnet.ops.linalg import _linear

    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 6)).astype(np.float16)  # linear saves x.reshape(-1, 6) and its 2-D output
    w, b = rng.standard_normal((6, 3)).astype(np.float16), rng.standard_normal(3).astype(np.float16)
    out, (x2, w_saved, _, y, _) = half.forward(_linear, [x, w, b], {"relu": True})
    assert np.shares_memory(x2, x) and w_saved is w and np.shares_memory(y, out)
    assert x2.dtype == y.dtype == np.float16
    np.testing.assert_array_equal(x2, x.reshape(-1, 6))
    np.testing.assert_array_equal(y, out.reshape(-1, 3))
    strided = x[:, ::2]  # widened to a contiguous copy: its reshape is still recognised
    _, (x2, *_) = half.forward(_linear, [strided, w, b], {"relu": True})
    np.testing.assert_array_equal(x2, strided.reshape(-1, 6))


def test_donating_step_is_bitwise_the_plain_step_and_gives_up_its_inputs():
    model = L.Sequential([L.Linear(8), L.ReLU(), L.Linear(3)])
    rng = np.random.default_rng(3)
    params = model.init(KEY, (None, 5))
    opt = optim.adam(1e-2)
    scale = DynamicLossScale(scale=2.0 ** 18, growth_interval=2)  # the first steps overflow and are skipped
    steps = [make_mixed_precision_train_step(model, fnnet.losses.softmax_cross_entropy, opt, Policy(), scale,
                                             donate=donate) for donate in (False, True)]
    plain, donated = [(fnnet.tree.map(np.copy, params), {}, step.init(fnnet.tree.map(np.copy, params)))
                      for step in steps]
    skipped = []
    for i in range(10):
        x, y = rng.standard_normal((4, 5)).astype(np.float32), rng.integers(0, 3, 4)
        *plain, m_plain = steps[0](*plain, x, y, KEY)
        given = donated
        *donated, m_donated = steps[1](*donated, x, y, KEY)
        _same(plain[:2], donated[:2])
        _same(plain[2].opt_state, donated[2].opt_state)
        assert m_plain == m_donated
        skipped.append(m_donated["skipped"])
        if not m_donated["skipped"]:
            with pytest.raises(Exception, match="donated"):
                steps[1](given[0], given[1], given[2], x, y, KEY)
    assert skipped[0] == 1.0 and 0.0 in skipped  # skipped steps, then updates applied (and donated)
