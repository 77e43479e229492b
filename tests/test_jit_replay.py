"""How fnnet.jit replays: optimizer updates as flat per-leaf steps, and the thread count a plan settles on.

Both are speed choices; these tests pin that they change no bits.
"""

import numpy as np
import pytest

import fnnet
from fnnet import layers as L
from fnnet import optim
from fnnet.autodiff.recorded_steps import FlatHostCall, HostCall
from fnnet.jit._plan import FIRST_TRIAL, TRIAL_BLOCK, TRIAL_REPLAYS, settle_threads

RNG = np.random.default_rng(3)
MODEL = L.Sequential([L.Linear(16), L.ReLU(), L.Linear(5)])
PARAMS = MODEL.init(fnnet.random.key(0), (8, 12))


def _loss(p, x, y):
    return fnnet.losses.softmax_cross_entropy(MODEL.apply(p, x), y)


def _batches(n):
    return [(RNG.standard_normal((8, 12)).astype(np.float32), RNG.integers(0, 5, 8)) for _ in range(n)]


def _bits(t):
    return [(np.asarray(x).dtype, np.asarray(x).shape, np.asarray(x).tobytes()) for x in fnnet.tree.leaves(t)]


def _host_steps(jitted):
    (plan,) = jitted.plans()
    fns = plan._replay.__globals__
    return [fns[k] for k in fns if k[0] == "f" and k[1:].isdigit() and isinstance(fns[k], (FlatHostCall, HostCall))]


OPTIMIZERS = {
    "sgd": lambda: optim.sgd(0.1),
    "sgd_decay_schedule": lambda: optim.sgd(optim.schedules.cosine_decay(0.1, 5), weight_decay=0.01),
    "sgd_nesterov": lambda: optim.sgd(0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda: optim.adam(1e-2),
    "adamw_masked": lambda: optim.adamw(1e-2, weight_decay=0.1, mask=L.decay_mask(MODEL, PARAMS)),
    "rmsprop_centered": lambda: optim.rmsprop(1e-2, momentum=0.5, centered=True),
    "rmsprop": lambda: optim.rmsprop(1e-2),
    "adagrad": lambda: optim.adagrad(0.1, initial_accumulator_value=0.1),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("fused_step", [True, False], ids=["update_and_apply", "update"])
def test_fused_optimizers_replay_as_flat_steps_bitwise_eager(name, fused_step):
    opt = OPTIMIZERS[name]()
    grad_fn = fnnet.grad(_loss)

    def step(p, s, x, y):
        g = grad_fn(p, x, y)
        if fused_step:
            return opt.update_and_apply(g, s, p)
        u, s = opt.update(g, s, p)
        return optim.apply_updates(p, u), s

    jitted = fnnet.jit(step)
    e = j = (PARAMS, opt.init(PARAMS))
    for x, y in _batches(6):
        e = step(*e, x, y)
        j = jitted(*j, x, y)
        assert _bits(e) == _bits(j)
    optimizer_steps = [s for s in _host_steps(jitted) if isinstance(s, FlatHostCall)]
    assert len(optimizer_steps) == 1  # the update ran as its flat specialisation, not the tree-level call


def test_donating_update_is_recorded_whole_and_stays_bitwise():
    opt = optim.adam(1e-2)
    grad_fn = fnnet.grad(_loss)

    def step(p, s, x, y):
        return opt.update_and_apply(grad_fn(p, x, y), s, p, donate=True)

    jitted = fnnet.jit(step)
    copy = lambda t: fnnet.tree.map(np.copy, t)  # noqa: E731
    e, j = (copy(PARAMS), opt.init(PARAMS)), (copy(PARAMS), opt.init(PARAMS))
    for x, y in _batches(4):
        e = step(*e, x, y)
        j = jitted(*j, x, y)
        assert _bits(e) == _bits(j)
    assert not any(isinstance(s, FlatHostCall) for s in _host_steps(jitted))


@pytest.mark.parametrize("threads", [0, 1])
def test_the_thread_count_of_a_plan_changes_no_bits(threads):
    model = L.Sequential([L.Conv2D(4, 3, padding=1), L.ReLU(), L.Flatten(), L.Linear(3)])
    params = model.init(fnnet.random.key(2), (6, 1, 8, 8))
    opt = optim.sgd(0.05, momentum=0.9)
    grad_fn = fnnet.grad(lambda p, x, y: fnnet.losses.softmax_cross_entropy(model.apply(p, x), y))
    step = lambda p, s, x, y: opt.update_and_apply(grad_fn(p, x, y), s, p)  # noqa: E731
    jitted = fnnet.jit(step)
    e = j = (params, opt.init(params))
    for i in range(TRIAL_REPLAYS + 4):
        x, y = RNG.standard_normal((6, 1, 8, 8)).astype(np.float32), RNG.integers(0, 3, 6)
        if i == 2:
            (plan,) = jitted.plans()
            plan.threads = threads  # settle it now, either way
        e = step(*e, x, y)
        j = jitted(*j, x, y)
        assert _bits(e) == _bits(j)


def test_a_plan_settles_its_thread_count_after_the_trial_replays():
    opt = optim.sgd(0.1)
    jitted = fnnet.jit(lambda p, s, x, y: opt.update_and_apply(fnnet.grad(_loss)(p, x, y), s, p))
    carry = (PARAMS, opt.init(PARAMS))
    threads = []
    for x, y in _batches(FIRST_TRIAL + TRIAL_REPLAYS):  # the first call traces; threads[r] after replay r
        carry = jitted(*carry, x, y)
        (plan,) = jitted.plans()
        threads.append(plan.threads)
    assert threads[:FIRST_TRIAL] == [0] * FIRST_TRIAL  # the caller's count until the first trial
    assert threads[FIRST_TRIAL:-1] == [None] * (TRIAL_REPLAYS - 1) and threads[-1] in (0, 1)
    assert len(plan._trials[0]) == len(plan._trials[1])  # blocks of each count, their first replay untimed
    assert len(plan._trials[0]) + len(plan._trials[1]) == TRIAL_REPLAYS - TRIAL_REPLAYS // TRIAL_BLOCK


def test_a_plan_measures_its_thread_count_again_after_retrial_after_replays(monkeypatch):
    import importlib

    monkeypatch.setattr(importlib.import_module("fnnet.jit._plan"), "RETRIAL_AFTER", FIRST_TRIAL + TRIAL_REPLAYS + 4)
    opt = optim.sgd(0.1)
    jitted = fnnet.jit(lambda p, s, x, y: opt.update_and_apply(fnnet.grad(_loss)(p, x, y), s, p))
    carry = (PARAMS, opt.init(PARAMS))
    measuring = []
    again = FIRST_TRIAL + TRIAL_REPLAYS + 4  # the replay that starts the second trial
    for x, y in _batches(2 * again + 1):  # the first call traces; measuring[r] is after replay r
        carry = jitted(*carry, x, y)
        (plan,) = jitted.plans()
        measuring.append(plan.threads is None)
    settled = FIRST_TRIAL + TRIAL_REPLAYS - 1  # the last replay of the first trial
    assert not any(measuring[:FIRST_TRIAL]) and all(measuring[FIRST_TRIAL:settled])
    assert not any(measuring[settled:again])
    assert all(measuring[again:again + TRIAL_REPLAYS - 1]) and not measuring[again + TRIAL_REPLAYS - 1]
    assert measuring[2 * again]  # the third trial starts after twice as many replays


@pytest.mark.parametrize("own, single, previous, kept", [
    ([4.0, 4.1, 4.2, 4.0, 4.3], [3.0, 3.1, 3.0, 3.2, 3.1], 0, 1),  # one thread wins clearly: it is kept
    ([3.0, 3.1, 3.0, 3.2, 3.1], [4.0, 4.1, 4.2, 4.0, 4.3], 1, 0),  # the caller's count wins clearly
    ([4.0, 4.1, 4.2, 4.0, 4.3], [3.0, 4.4, 4.5, 4.2, 4.6], 1, 1),  # one lucky replay, slower median: unclear
    ([4.0, 4.1, 4.2, 4.0, 4.3], [3.0, 4.4, 4.5, 4.2, 4.6], None, 0),  # ... first trial: the median decides
    ([3.0, 4.4, 4.5, 4.2, 4.6], [3.6, 3.6, 3.7, 3.8, 3.6], 0, 0),  # faster median, not its fastest: unclear
    ([3.0, 4.4, 4.5, 4.2, 4.6], [3.6, 3.6, 3.7, 3.8, 3.6], None, 1),
    ([4.0, 4.0, 4.0, 4.0, 4.0], [3.9, 3.9, 3.9, 3.9, 3.9], 0, 0),  # within 5%: the previous choice stands
])
def test_a_trial_changes_the_thread_count_only_on_a_clear_win(own, single, previous, kept):
    assert settle_threads(own, single, previous) == kept


def _adam_step():
    opt = optim.adam(1e-2)
    grad_fn = fnnet.grad(_loss)
    return opt, lambda p, s, x, y: opt.update_and_apply(grad_fn(p, x, y), s, p)


def _copy(t):
    return fnnet.tree.map(np.copy, t)


def test_donate_argnums_writes_in_place_bitwise_and_refuses_stale_arrays():
    opt, step = _adam_step()
    jitted = fnnet.jit(step, donate_argnums=(0, 1))
    e, d = (_copy(PARAMS), opt.init(PARAMS)), (_copy(PARAMS), opt.init(PARAMS))
    for i, (x, y) in enumerate(_batches(5)):
        e = step(*e, x, y)
        old, d = d, jitted(*d, x, y)
        assert _bits(e) == _bits(d)
        if i > 0:  # replays write the new params and moments over the donated ones
            for a, b in zip(fnnet.tree.leaves(old), fnnet.tree.leaves(d)):
                assert np.shares_memory(a, b) == (a.ndim > 0)  # (the step count is a new 0-d array)
    with pytest.raises(ValueError, match="argument leaf at .* was donated to an earlier call"):
        jitted(*old, x, y)
    with pytest.raises(ValueError, match="donated to an earlier call"):
        opt.update_and_apply(fnnet.tree.map(np.zeros_like, PARAMS), old[1], d[0])


def test_donation_errors_are_clear_and_a_failed_call_gives_nothing_up():
    opt, step = _adam_step()
    jitted = fnnet.jit(step, donate_argnums=(0,))
    params, state = _copy(PARAMS), opt.init(PARAMS)
    x, y = _batches(1)[0]
    weight = params["0"]["weight"]  # (12, 16)
    with pytest.raises(ValueError, match="argument leaf at '2' shares memory with donated argument leaf at '0/0/weight'"):
        jitted(params, state, weight[:8, :12], y)
    with pytest.raises(ValueError, match="share memory"):  # two donated leaves over one buffer
        fnnet.jit(lambda p, q, s, x, y: step(p, s, x, y), donate_argnums=(0, 1))(params, _copy(params) | {
            "0": {"weight": weight[:, :], "bias": params["0"]["bias"].copy()}}, state, x, y)
    bad = y.copy()
    bad[0] = 99
    with pytest.raises(IndexError):
        jitted(params, state, x, bad)
    jitted(params, state, x, y)  # the failed call above gave nothing up
    with pytest.raises(TypeError, match="donate_argnums"):
        fnnet.jit(step, donate_argnums=(-1,))
    with pytest.raises(ValueError, match="both static and donated"):
        fnnet.jit(step, static_argnums=(0,), donate_argnums=(0,))


def test_an_input_a_later_step_still_reads_is_not_overwritten():
    opt, _ = _adam_step()
    grad_fn = fnnet.grad(_loss)

    def step(p, s, x, y):  # the old params are read again after the update: they must keep their values
        new, s = opt.update_and_apply(grad_fn(p, x, y), s, p)
        return new, s, _loss(p, x, y)

    jitted = fnnet.jit(step, donate_argnums=(0, 1))
    e, d = (_copy(PARAMS), opt.init(PARAMS)), (_copy(PARAMS), opt.init(PARAMS))
    for x, y in _batches(4):
        *e, le = step(*e, x, y)
        *d, ld = jitted(*d, x, y)
        assert _bits((e, le)) == _bits((d, ld))


def test_the_benchmarks_warm_up_past_the_thread_trial():
    from fnnet.bench.timing import WARMUP

    assert WARMUP > FIRST_TRIAL + TRIAL_REPLAYS  # no timed call of a jitted step is a replay of its first trial
