"""Tests for fnnet.optim: parity with torch.optim, fused vs chained building blocks, purity, convergence on
known problems, schedules (vs closed forms and torch.optim.lr_scheduler), gradient accumulation, errors."""

import math

import numba
import numpy as np
import pytest
import torch

import fnnet
from fnnet import ops, optim, tree
from fnnet.kernels import optim as K
from fnnet.optim import schedules as S

# ------------------------------------------------------------------------------------------ fixtures


def make_params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "layers": [
            {"weight": rng.standard_normal((4, 3)).astype(dtype), "bias": rng.standard_normal(3).astype(dtype)},
            {"weight": rng.standard_normal((3, 2)).astype(dtype)},
        ],
        "scale": np.asarray(rng.standard_normal(), dtype),     # a 0-d leaf
    }


def make_grads(params, n, seed=1):
    rng = np.random.default_rng(seed)
    return [tree.map(lambda p: rng.standard_normal(p.shape).astype(p.dtype), params) for _ in range(n)]


# name, fnnet factory (fused: bool -> GradientTransformation), torch factory (list of tensors -> optimizer)
TORCH_CASES = [
    ("sgd", lambda f: optim.sgd(0.1, fused=f), lambda ps: torch.optim.SGD(ps, lr=0.1)),
    ("sgd_weight_decay", lambda f: optim.sgd(0.1, weight_decay=0.05, fused=f),
     lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=0.05)),
    ("sgd_momentum", lambda f: optim.sgd(0.05, momentum=0.9, fused=f),
     lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9)),
    ("sgd_nesterov", lambda f: optim.sgd(0.05, momentum=0.9, nesterov=True, fused=f),
     lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True)),
    ("sgd_momentum_weight_decay", lambda f: optim.sgd(0.05, momentum=0.8, weight_decay=0.01, fused=f),
     lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, weight_decay=0.01)),
    ("sgd_nesterov_weight_decay", lambda f: optim.sgd(0.05, momentum=0.9, nesterov=True, weight_decay=0.01, fused=f),
     lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("adam", lambda f: optim.adam(0.01, fused=f), lambda ps: torch.optim.Adam(ps, lr=0.01)),
    ("adam_hyper", lambda f: optim.adam(0.003, b1=0.8, b2=0.99, eps=1e-6, fused=f),
     lambda ps: torch.optim.Adam(ps, lr=0.003, betas=(0.8, 0.99), eps=1e-6)),
    ("adamw", lambda f: optim.adamw(0.01, weight_decay=0.1, fused=f),
     lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1)),
    ("adamw_default_decay", lambda f: optim.adamw(0.01, fused=f), lambda ps: torch.optim.AdamW(ps, lr=0.01)),
    ("rmsprop", lambda f: optim.rmsprop(0.01, fused=f), lambda ps: torch.optim.RMSprop(ps, lr=0.01)),
    ("rmsprop_momentum", lambda f: optim.rmsprop(0.01, alpha=0.9, momentum=0.9, fused=f),
     lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, momentum=0.9)),
    ("rmsprop_centered", lambda f: optim.rmsprop(0.01, centered=True, fused=f),
     lambda ps: torch.optim.RMSprop(ps, lr=0.01, centered=True)),
    ("rmsprop_centered_momentum", lambda f: optim.rmsprop(0.01, eps=1e-6, momentum=0.5, centered=True, fused=f),
     lambda ps: torch.optim.RMSprop(ps, lr=0.01, eps=1e-6, momentum=0.5, centered=True)),
    ("adagrad", lambda f: optim.adagrad(0.1, fused=f), lambda ps: torch.optim.Adagrad(ps, lr=0.1)),
    ("adagrad_initial", lambda f: optim.adagrad(0.1, initial_accumulator_value=0.5, eps=1e-6, fused=f),
     lambda ps: torch.optim.Adagrad(ps, lr=0.1, initial_accumulator_value=0.5, eps=1e-6)),
]
TORCH_IDS = [c[0] for c in TORCH_CASES]


def run_against_torch(opt, torch_factory, steps=20, schedule_factor=None):
    """Run ``opt`` and a torch optimizer on the same params and gradients; compare after every step."""
    params = make_params()
    grads = make_grads(params, steps)
    leaves, treedef = tree.flatten(params)
    tensors = [torch.tensor(x, requires_grad=True) for x in leaves]
    topt = torch_factory(tensors)
    scheduler = None if schedule_factor is None else torch.optim.lr_scheduler.LambdaLR(topt, schedule_factor)
    state = opt.init(params)
    for step, g in enumerate(grads):
        updates, state = opt.update(g, state, params)
        params = optim.apply_updates(params, updates)
        for t, gl in zip(tensors, tree.leaves(g)):
            t.grad = torch.tensor(gl)
        topt.step()
        if scheduler is not None:
            scheduler.step()
        expected = tree.unflatten(treedef, [t.detach().numpy() for t in tensors])
        try:
            tree.assert_allclose(params, expected, rtol=1e-6, atol=0)
        except AssertionError as e:
            raise AssertionError(f"step {step}: {e}") from None
    return state


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "chain"])
@pytest.mark.parametrize("name,factory,torch_factory", TORCH_CASES, ids=TORCH_IDS)
def test_matches_torch(name, factory, torch_factory, fused):
    run_against_torch(factory(fused), torch_factory)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "chain"])
def test_schedule_matches_torch_lambda_lr(fused):
    schedule = S.cosine_decay(0.02, 15, alpha=0.1)
    run_against_torch(optim.adam(schedule, fused=fused), lambda ps: torch.optim.Adam(ps, lr=0.02),
                      schedule_factor=lambda step: schedule(step) / 0.02)
    step_schedule = S.step_decay(0.1, 5, 0.5)
    run_against_torch(optim.sgd(step_schedule, momentum=0.9, fused=fused),
                      lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
                      schedule_factor=lambda step: step_schedule(step) / 0.1)


ALL_OPTIMIZERS = [
    ("sgd", lambda f: optim.sgd(0.1, fused=f)),
    ("sgd_momentum_decay", lambda f: optim.sgd(0.1, momentum=0.9, weight_decay=0.01, fused=f)),
    ("sgd_nesterov", lambda f: optim.sgd(0.1, momentum=0.9, nesterov=True, fused=f)),
    ("adam", lambda f: optim.adam(1e-2, fused=f)),
    ("adamw", lambda f: optim.adamw(1e-2, weight_decay=0.1, fused=f)),
    ("rmsprop_centered_momentum", lambda f: optim.rmsprop(1e-2, momentum=0.9, centered=True, fused=f)),
    ("rmsprop", lambda f: optim.rmsprop(1e-2, fused=f)),
    ("adagrad", lambda f: optim.adagrad(0.1, initial_accumulator_value=0.1, fused=f)),
    ("adam_schedule", lambda f: optim.adam(S.warmup_cosine_decay(0.0, 1e-2, 3, 10), fused=f)),
]
ALL_IDS = [c[0] for c in ALL_OPTIMIZERS]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,factory", ALL_OPTIMIZERS, ids=ALL_IDS)
def test_fused_agrees_with_chain(name, factory, dtype):
    params_f = params_c = make_params(dtype)
    fused, chained = factory(True), factory(False)
    sf, sc = fused.init(params_f), chained.init(params_c)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for g in make_grads(params_f, 8):
        uf, sf = fused.update(g, sf, params_f)
        uc, sc = chained.update(g, sc, params_c)
        tree.assert_allclose(uf, uc, rtol=rtol, atol=1e-7 if dtype == np.float32 else 1e-15)
        params_f, params_c = optim.apply_updates(params_f, uf), optim.apply_updates(params_c, uc)
    for leaf in tree.leaves((uf, sf, params_f)):
        if np.issubdtype(leaf.dtype, np.floating):
            assert leaf.dtype == dtype


def _snapshot(t):
    return [np.array(x, copy=True) for x in tree.leaves(t)]


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "chain"])
@pytest.mark.parametrize("name,factory", ALL_OPTIMIZERS + [
    ("clip", lambda f: optim.chain(optim.clip_by_global_norm(0.5), optim.sgd(0.1, fused=f))),
], ids=ALL_IDS + ["clip"])
def test_update_is_pure(name, factory, fused):
    params = make_params()
    params["empty"] = np.zeros((0, 3))                       # 0-size leaves go through the kernels too
    opt = factory(fused)
    state = opt.init(params)
    grads = make_grads(params, 2)
    _, state = opt.update(grads[0], state, params)         # non-trivial buffers
    before = [_snapshot(params), _snapshot(grads[1]), _snapshot(state)]
    state_leaves = tree.leaves(state)
    updates, new_state = opt.update(grads[1], state, params)
    after = [_snapshot(params), _snapshot(grads[1]), _snapshot(state)]
    for b, a in zip(before, after):
        for x, y in zip(b, a):
            np.testing.assert_array_equal(x, y)
    for old, new in zip(state_leaves, tree.leaves(new_state)):
        assert new is not old and not np.shares_memory(new, old)
    assert tree.structure(new_state) == tree.structure(state)
    assert tree.structure(updates) == tree.structure(grads[1])
    # the same inputs give the same outputs: nothing hidden changed
    updates2, new_state2 = opt.update(grads[1], state, params)
    tree.assert_allclose(updates, updates2, rtol=0, atol=0)
    tree.assert_allclose(new_state, new_state2, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------- convergence

QUAD_A = np.linspace(1.0, 10.0, 6)
QUAD_C = np.linspace(-1.0, 2.0, 6)


def quadratic(p):
    d = p["x"] - QUAD_C
    return 0.5 * float(np.sum(QUAD_A * d * d)), {"x": QUAD_A * d}


def rosenbrock(p):
    x, y = p["xy"]
    f = (1 - x) ** 2 + 100 * (y - x * x) ** 2
    return f, {"xy": np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])}


PROBLEMS = {"quadratic": (quadratic, {"x": np.zeros(6)}), "rosenbrock": (rosenbrock, {"xy": np.array([-1.0, 1.5])})}

CONVERGENCE = [
    ("quadratic", "sgd", lambda: optim.sgd(0.1), 200, 1e-12),
    ("quadratic", "sgd_momentum", lambda: optim.sgd(0.02, momentum=0.9), 200, 1e-6),
    ("quadratic", "sgd_nesterov", lambda: optim.sgd(0.02, momentum=0.9, nesterov=True), 200, 1e-8),
    ("quadratic", "adam", lambda: optim.adam(S.cosine_decay(0.1, 300)), 300, 1e-8),
    ("quadratic", "adamw", lambda: optim.adamw(S.cosine_decay(0.1, 300), weight_decay=1e-4), 300, 1e-6),
    ("quadratic", "rmsprop", lambda: optim.rmsprop(S.cosine_decay(0.03, 300)), 300, 1e-10),
    ("quadratic", "rmsprop_centered_momentum",
     lambda: optim.rmsprop(S.cosine_decay(0.01, 300), momentum=0.9, centered=True), 300, 1e-9),
    ("quadratic", "adagrad", lambda: optim.adagrad(0.5), 300, 1e-20),
    ("quadratic", "chain_clip_adam", lambda: optim.chain(optim.clip_by_global_norm(1.0), optim.scale_by_adam(),
                                                         optim.scale_by_learning_rate(S.cosine_decay(0.1, 300))),
     300, 1e-8),
    ("rosenbrock", "adam", lambda: optim.adam(S.cosine_decay(0.1, 2000)), 2000, 1e-4),
    ("rosenbrock", "sgd_momentum", lambda: optim.sgd(S.cosine_decay(1e-3, 3000), momentum=0.9), 3000, 1e-5),
    ("rosenbrock", "rmsprop_momentum", lambda: optim.rmsprop(S.cosine_decay(1e-3, 2000), momentum=0.9), 2000, 1e-8),
]


@pytest.mark.parametrize("problem,name,factory,steps,tolerance", CONVERGENCE,
                         ids=[f"{c[0]}-{c[1]}" for c in CONVERGENCE])
def test_reaches_low_loss(problem, name, factory, steps, tolerance):
    fn, params = PROBLEMS[problem]
    opt = factory()
    state = opt.init(params)
    start = fn(params)[0]
    for _ in range(steps):
        _, g = fn(params)
        updates, state = opt.update(g, state, params)
        params = optim.apply_updates(params, updates)
    loss = fn(params)[0]
    assert loss < tolerance < start, f"{name} on {problem}: loss {loss:.3g} after {steps} steps (start {start:.3g})"


# --------------------------------------------------------------------------------------- building blocks


def test_count_is_an_int64_array_and_increments():
    opt = optim.adam(1e-3)
    params = make_params()
    state = opt.init(params)
    assert state.count.dtype == np.int64 and state.count.shape == () and int(state.count) == 0
    _, state2 = opt.update(make_grads(params, 1)[0], state, params)
    assert int(state2.count) == 1 and int(state.count) == 0


def test_scale_and_chain_state():
    params = make_params()
    g = make_grads(params, 1)[0]
    opt = optim.chain(optim.scale(2.0), optim.scale_by_schedule(lambda step: 0.5 ** step))
    state = opt.init(params)
    assert isinstance(state, tuple) and len(state) == 2 and state[0] == optim.EmptyState()
    u1, state = opt.update(g, state, params)
    u2, state = opt.update(g, state, params)
    tree.assert_allclose(u1, tree.scale(g, 2.0), rtol=1e-15)
    tree.assert_allclose(u2, tree.scale(g, 1.0), rtol=1e-15)
    assert int(state[1].count) == 2


def test_clip_by_global_norm():
    params = make_params()
    g = make_grads(params, 1)[0]
    norm = math.sqrt(sum(float(np.sum(x * x)) for x in tree.leaves(g)))
    assert optim.global_norm(g) == pytest.approx(norm, rel=1e-14)
    clip = optim.clip_by_global_norm(norm / 2)
    clipped, _ = clip.update(g, clip.init(params))
    tree.assert_allclose(clipped, tree.scale(g, 0.5), rtol=1e-14)
    assert optim.global_norm(clipped) == pytest.approx(norm / 2, rel=1e-14)
    loose = optim.clip_by_global_norm(norm * 2)
    same, _ = loose.update(g, loose.init(params))
    for a, b in zip(tree.leaves(same), tree.leaves(g)):
        np.testing.assert_array_equal(a, b)


def test_clip_matches_torch_up_to_its_epsilon():
    params = make_params()
    g = make_grads(params, 1)[0]
    tensors = [torch.tensor(x) for x in tree.leaves(g)]
    for t in tensors:
        t.grad = t.clone()
    torch.nn.utils.clip_grad_norm_(tensors, 0.3)
    clip = optim.clip_by_global_norm(0.3)
    clipped, _ = clip.update(g, clip.init(params))
    for ours, t in zip(tree.leaves(clipped), tensors):
        np.testing.assert_allclose(ours, t.grad.numpy(), rtol=1e-5)   # torch divides by norm + 1e-6


def test_add_weight_decay_and_trace():
    params = make_params()
    g = make_grads(params, 1)[0]
    decay = optim.add_weight_decay(0.1)
    u, _ = decay.update(g, decay.init(params), params)
    tree.assert_allclose(u, tree.add_scaled(g, params, 0.1), rtol=1e-15)
    assert optim.trace is optim.scale_by_momentum
    mom = optim.trace(0.5)
    state = mom.init(params)
    u1, state = mom.update(g, state)
    u2, state = mom.update(g, state)
    tree.assert_allclose(u1, g, rtol=0)
    tree.assert_allclose(u2, tree.scale(g, 1.5), rtol=1e-15)


def test_sum_of_squares_kernel_is_deterministic_across_thread_counts():
    x = np.random.default_rng(0).standard_normal(3 * K.SQUARES_CHUNK + 17).astype(np.float32)
    reference = math.fsum(float(v) ** 2 for v in x)
    before = numba.get_num_threads()
    results = []
    try:
        for n in sorted({1, before}):
            numba.set_num_threads(n)
            results.append(K.sum_of_squares(x))
    finally:
        numba.set_num_threads(before)
    assert len(set(results)) == 1
    assert results[0] == pytest.approx(reference, rel=1e-12)
    assert K.sum_of_squares(np.zeros(0)) == 0.0


# -------------------------------------------------------------------------------------------- schedules


def test_schedules_closed_forms():
    assert [S.constant(0.3)(s) for s in (0, 10)] == [0.3, 0.3]
    sd = S.step_decay(1.0, 3, 0.5)
    assert [sd(s) for s in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    ed = S.exponential_decay(2.0, 0.5, 4)
    assert ed(0) == 2.0 and ed(4) == pytest.approx(1.0) and ed(2) == pytest.approx(2.0 * 0.5 ** 0.5)
    stair = S.exponential_decay(2.0, 0.5, 4, staircase=True)
    assert [stair(3), stair(4), stair(7)] == [2.0, 1.0, 1.0]
    cd = S.cosine_decay(1.0, 10, alpha=0.1)
    assert cd(0) == 1.0 and cd(5) == pytest.approx(0.55) and cd(10) == pytest.approx(0.1) and cd(50) == cd(10)
    wc = S.warmup_cosine_decay(0.0, 1.0, 4, 14, end=0.1)
    assert [wc(s) for s in range(5)] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert wc(9) == pytest.approx(0.55) and wc(14) == pytest.approx(0.1) and wc(100) == pytest.approx(0.1)
    assert "warmup_steps=4" in repr(wc)


@pytest.mark.parametrize("ours,make_torch", [
    (S.step_decay(0.1, 3, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
    (S.exponential_decay(0.1, 0.9), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.9)),
    (S.cosine_decay(0.1, 12, alpha=0.2), lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 12, eta_min=0.02)),
], ids=["step", "exponential", "cosine"])
def test_schedules_match_torch_schedulers(ours, make_torch):
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = make_torch(topt)
    for step in range(12):
        assert ours(step) == pytest.approx(topt.param_groups[0]["lr"], rel=1e-9)
        topt.step()
        sched.step()


def test_schedule_errors():
    with pytest.raises(ValueError, match="step_size must be a positive int"):
        S.step_decay(0.1, 0)
    with pytest.raises(ValueError, match="decay_steps .* must exceed warmup_steps"):
        S.warmup_cosine_decay(0.0, 1.0, 10, 10)
    with pytest.raises(ValueError, match="alpha must be a finite number in"):
        S.cosine_decay(1.0, 10, alpha=2.0)
    with pytest.raises(ValueError, match="step must be >= 0"):
        S.constant(1.0)(-1)
    with pytest.raises(TypeError, match="step must be an int"):
        S.constant(1.0)(1.5)


# ---------------------------------------------------------------------------------- gradient accumulation


def _mse_loss(params, batch):
    x, y = batch
    r = ops.subtract(ops.linear(x, params["weight"], params["bias"]), y)
    r2 = ops.reshape(ops.multiply(r, r), (-1,))
    n = x.shape[0] * y.shape[1]
    return ops.multiply(ops.matmul(r2, np.ones(n, x.dtype)), 1.0 / n)   # mean of squares


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_accumulate_gradients_equals_full_batch(dtype, rtol):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 5)).astype(dtype)
    y = rng.standard_normal((64, 3)).astype(dtype)
    params = {"weight": rng.standard_normal((5, 3)).astype(dtype), "bias": rng.standard_normal(3).astype(dtype)}
    grad_fn = fnnet.grad(_mse_loss)
    full = grad_fn(params, (x, y))
    micro = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    accumulated = optim.accumulate_gradients(grad_fn, params, micro)
    tree.assert_allclose(accumulated, full, rtol=rtol, atol=0)
    assert all(leaf.dtype == dtype for leaf in tree.leaves(accumulated))
    uneven = [(x[:10], y[:10]), (x[10:30], y[10:30]), (x[30:], y[30:])]
    weighted = optim.accumulate_gradients(grad_fn, params, uneven, weights=[10, 20, 34])
    tree.assert_allclose(weighted, full, rtol=rtol, atol=0)
    same = optim.accumulate([grad_fn(params, b) for b in micro])
    tree.assert_allclose(same, accumulated, rtol=0, atol=0)


def test_accumulate_errors():
    with pytest.raises(ValueError, match="batches is empty"):
        optim.accumulate_gradients(lambda p, b: p, {"w": np.zeros(2)}, [])
    with pytest.raises(ValueError, match="got 1 weights for 2"):
        optim.accumulate([{"w": np.zeros(2)}] * 2, weights=[1.0])
    with pytest.raises(ValueError, match="does not have the structure"):
        optim.accumulate([{"w": np.zeros(2)}, {"v": np.zeros(2)}])


# ---------------------------------------------------------------------------------------------- errors


def test_errors_are_clear():
    params = make_params()
    g = make_grads(params, 1)[0]
    opt = optim.adam(1e-3)
    state = opt.init(params)
    with pytest.raises(ValueError, match=r"fnnet.optim.adam: opt_state.mu does not have the structure of grads"):
        opt.update({"other": np.zeros(3)}, state, params)
    bad = tree.map(lambda x: x.astype(np.float32), g)
    with pytest.raises(TypeError, match=r"opt_state.mu leaf at 'layers/0/bias' has dtype float64 but"):
        opt.update(bad, state, params)
    half = tree.map(lambda x: x.astype(np.float16), params)
    with pytest.raises(TypeError, match="float16 is a storage type"):
        opt.init(half)
    with pytest.raises(TypeError, match="opt_state must be the AdamState made by this optimizer's init.params., got SgdState"):
        opt.update(g, optim.sgd(0.1).init(params), params)
    with pytest.raises(ValueError, match="weight decay needs the current params"):
        optim.adamw(1e-3).update(g, optim.adamw(1e-3).init(params))
    with pytest.raises(ValueError, match="update needs the current params"):
        dec = optim.add_weight_decay(0.1)
        dec.update(g, dec.init(params))
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        optim.sgd(0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"learning_rate must be a finite number in \[0.0, inf\), got -0.1"):
        optim.sgd(-0.1)
    with pytest.raises(ValueError, match=r"b1 must be a finite number in \[0.0, 1.0\), got 1.0"):
        optim.adam(1e-3, b1=1.0)
    with pytest.raises(ValueError, match="schedule returned nan at step 0"):
        o = optim.sgd(lambda step: float("nan"))
        o.update(g, o.init(params), params)
    with pytest.raises(TypeError, match="argument 0 must be a GradientTransformation"):
        optim.chain(optim.scale_by_adam)
    with pytest.raises(ValueError, match="shape"):
        optim.apply_updates({"w": np.zeros(3)}, {"w": np.zeros(4)})


def test_hyperparameter_casts_keep_the_sign_of_zero_and_the_value():
    from fnnet.optim.base import cast
    f32 = np.dtype(np.float32)
    assert np.signbit(cast(0.0, f32)) == False and np.signbit(cast(-0.0, f32)) == True  # noqa: E712
    assert np.signbit(cast(-0.0, f32)) == True and np.signbit(cast(0.0, f32)) == False  # noqa: E712 (cached)
    assert cast(0.1, f32) == np.float32(0.1) and type(cast(0.1, np.float64)) is np.float64
    assert np.isnan(cast(float("nan"), f32)) and cast(np.array(2.5), f32) == np.float32(2.5)  # 0-d: not hashable
