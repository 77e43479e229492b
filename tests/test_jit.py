"""fnnet.jit: replays are bitwise the eager run, value-dependent Python is refused, signatures retrace."""

import threading

import numpy as np
import pytest

import fnnet
from fnnet import layers as L
from fnnet import ops, optim
from fnnet.vmap import FallbackWarning

RNG = np.random.default_rng(0)


def _same(a, b):
    la, lb = fnnet.tree.leaves(a), fnnet.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


def _train_both(model, optimizer, x_shape, classes=10, steps=3, dtype=np.float32, label_shape=None):
    """Run make_train_step's step eagerly and jitted for ``steps`` batches; compare every output bitwise."""
    params = model.init(fnnet.random.key(1), x_shape)
    state = model.init_state(x_shape) if model.has_state else {}
    opt_state = optimizer.init(params)
    eager = fnnet.train.make_train_step(model, fnnet.losses.softmax_cross_entropy, optimizer, jit=False)
    jitted = fnnet.train.make_train_step(model, fnnet.losses.softmax_cross_entropy, optimizer, jit=True)
    e = j = (params, state, opt_state)
    key = fnnet.random.key(7)
    for _ in range(steps):
        key, sub = fnnet.random.split(key)
        x = RNG.standard_normal(x_shape).astype(dtype)
        y = RNG.integers(0, classes, x_shape[0])
        *e, me = eager(*e, x, y, sub)
        *j, mj = jitted(*j, x, y, sub)
        _same(e, j)
        assert me == mj
    return jitted


def test_mlp_train_step_is_bitwise_eager_with_every_optimizer():
    model = L.Sequential([L.Linear(32), L.ReLU(), L.Linear(10)])
    for opt in (optim.sgd(0.1), optim.sgd(0.1, momentum=0.9, nesterov=True), optim.adam(1e-3),
                optim.adamw(1e-3, weight_decay=0.1), optim.rmsprop(1e-3, momentum=0.5), optim.adagrad(0.1),
                optim.chain(optim.clip_by_global_norm(1.0), optim.adam(optim.schedules.cosine_decay(1e-2, 10)))):
        step = _train_both(model, opt, (16, 20))
        assert step.jitted.cache_info().misses == 1 and step.jitted.cache_info().hits == 2


def test_cnn_with_batchnorm_and_dropout_is_bitwise_eager():
    model = L.Sequential([L.Conv2D(4, 3, padding=1), L.BatchNorm(), L.ReLU(), L.MaxPool2D(2), L.Dropout(0.3),
                          L.Flatten(), L.Linear(10)])
    _train_both(model, optim.adam(1e-3), (8, 1, 8, 8))


def test_remat_blocks_are_bitwise_eager():
    block = L.Sequential([L.Linear(24), L.Tanh(), L.Dropout(0.2), L.Linear(24), L.ReLU()])
    model = L.Sequential([L.Remat(block), L.Remat(block), L.Linear(10)])
    _train_both(model, optim.sgd(0.05, momentum=0.9), (12, 24))


def test_layer_norm_gelu_are_bitwise_eager():
    model = L.Sequential([L.Linear(16), L.LayerNorm(), L.GELU(), L.Linear(10)])
    _train_both(model, optim.adam(1e-3), (6, 9))


def test_float64_function_with_broadcasting_is_bitwise_eager():
    def loss(w, b, x):
        return ops.mean(ops.log_softmax(ops.tanh(x @ w + b) * 2.0 - 1.0))

    f = fnnet.value_and_grad(loss, argnums=(0, 1))
    jf = fnnet.jit(f)
    w, b = RNG.standard_normal((5, 3)), RNG.standard_normal(3)
    for _ in range(3):
        x = RNG.standard_normal((7, 5))
        _same(jf(w, b, x), f(w, b, x))


def test_float16_policy_step_is_bitwise_eager():
    model = L.Sequential([L.Linear(16), L.ReLU(), L.Linear(10)])
    policy = fnnet.precision.Policy()
    params = model.init(fnnet.random.key(0), (8, 12))
    opt = optim.sgd(0.1)

    def loss_fn(p, x, y):
        logits = model.apply(policy.cast_to_compute(p), policy.cast_to_compute(x))
        return fnnet.losses.softmax_cross_entropy(policy.cast_to_output(logits), y) * 128.0

    def step(p, s, x, y):
        loss, g = fnnet.value_and_grad(loss_fn)(p, x, y)
        g = fnnet.tree.map(lambda a: a / 128.0, g)
        u, s = opt.update(g, s, p)
        return optim.apply_updates(p, u), s, loss

    jstep = fnnet.jit(step)
    e = j = (params, opt.init(params))
    for _ in range(3):
        x = RNG.standard_normal((8, 12)).astype(np.float32)
        y = RNG.integers(0, 10, 8)
        *e, le = step(*e, x, y)
        *j, lj = jstep(*j, x, y)
        _same((e, le), (j, lj))


def test_gru_loop_is_bitwise_eager():
    cell = L.GRUCell(16)
    head = L.Linear(5)
    kc, kh = fnnet.random.split(fnnet.random.key(3))
    params = {"cell": cell.init(kc, (4, 8)), "head": head.init(kh, (4, 16))}
    opt = optim.adam(1e-2)

    def loss_fn(p, xs, y):
        h = np.zeros((4, 16), np.float32)
        for t in range(xs.shape[1]):
            h = cell.apply(p["cell"], xs[:, t], h)
        return fnnet.losses.softmax_cross_entropy(head.apply(p["head"], h), y)

    def step(p, s, xs, y):
        loss, g = fnnet.value_and_grad(loss_fn)(p, xs, y)
        u, s = opt.update(g, s, p)
        return optim.apply_updates(p, u), s, loss

    jstep = fnnet.jit(step)
    e = j = (params, opt.init(params))
    for _ in range(3):
        xs = RNG.standard_normal((4, 6, 8)).astype(np.float32)
        y = RNG.integers(0, 5, 4)
        *e, le = step(*e, xs, y)
        *j, lj = jstep(*j, xs, y)
        _same((e, le), (j, lj))


def test_a_new_key_draws_new_bits_as_eager():
    f = fnnet.jit(lambda x, key: ops.dropout(x, key, 0.5) + fnnet.random.normal(key, x.shape))
    x = np.ones((64,), np.float32)
    outs = [f(x, fnnet.random.key(i)) for i in range(3)]
    for i, o in enumerate(outs):
        _same(o, ops.dropout(x, fnnet.random.key(i), 0.5) + fnnet.random.normal(fnnet.random.key(i), x.shape))
    assert not np.array_equal(outs[0], outs[1])
    assert f.cache_info().misses == 1


@pytest.mark.parametrize("code, what", [
    ("if loss > 0: loss = loss * 2", "bool()"),
    ("loss = loss * float(loss)", "float()"),
    ("loss = loss * loss.item()", ".item()"),
])
def test_value_dependent_python_raises_naming_the_line(code, what):
    namespace = {"fnnet": fnnet, "ops": ops}
    exec(compile(f"def f(x):\n    loss = ops.sum(x)\n    {code}\n    return loss\n", "user_step.py", "exec"),
         namespace)
    with pytest.raises(TypeError, match=rf"{what}.*user_step.py:3.*static") as info:
        fnnet.jit(namespace["f"])(np.ones(3, np.float32))
    assert isinstance(info.value, fnnet.autodiff.recording.ConcretizationError)


def test_value_dependent_python_inside_grad_raises():
    def loss_fn(w, x):
        y = ops.sum(x * w)
        return y if y > 0 else -y

    with pytest.raises(TypeError, match="bool"):
        fnnet.jit(fnnet.grad(loss_fn))(np.ones(3, np.float32), np.ones(3, np.float32))


def test_shape_dtype_structure_and_static_changes_retrace():
    calls = []

    def f(x, scale, mode):
        calls.append(1)
        return fnnet.tree.map(lambda v: v * scale if mode == "mul" else v + scale, x)

    jf = fnnet.jit(f, static_argnums=(2,))
    a32, a64, b32 = np.ones(3, np.float32), np.ones(3, np.float64), np.ones(4, np.float32)
    for x, scale, mode in [(a32, 2.0, "mul"), (a32, 2.0, "mul"), (a64, 2.0, "mul"), (b32, 2.0, "mul"),
                           (a32, 3.0, "mul"), (a32, 2.0, "add")]:
        _same(jf(x, scale, mode), f(x, scale, mode))
    info = jf.cache_info()
    assert (info.hits, info.misses) == (1, 5)
    assert jf({"a": a32}, 2.0, "mul")["a"].shape == (3,) and jf.cache_info().misses == 6


def test_plan_cache_is_bounded():
    jf = fnnet.jit(lambda x: x * 2.0, max_plans=2)
    for n in range(1, 5):
        jf(np.ones(n, np.float32))
    assert jf.cache_info().size == 2 and len(jf.plans()) == 2
    jf.clear_cache()
    assert jf.cache_info().size == 0


def test_returned_arrays_are_never_overwritten_by_later_calls():
    jf = fnnet.jit(lambda x: ops.tanh(x) * 3.0)
    first = jf(np.full(5, 0.5, np.float32))
    keep = first.copy()
    jf(np.full(5, -2.0, np.float32))
    np.testing.assert_array_equal(first, keep)


def test_labels_out_of_range_still_raise_on_replay():
    jf = fnnet.jit(lambda z, y: fnnet.losses.softmax_cross_entropy(z, y))
    z = np.zeros((3, 4), np.float32)
    jf(z, np.array([0, 1, 2]))
    with pytest.raises(IndexError, match=r"labels\[1\] = 9 is out of range for 4 classes"):  # the full message
        jf(z, np.array([0, 9, 2]))
    with pytest.raises(IndexError, match=r"labels\[2\] = -1 is out of range"):
        jf(z, np.array([0, 1, -1]))
    assert jf.cache_info().misses == 1  # replays, whose quick test failed and ran the full check


def test_embedding_indices_out_of_range_still_raise_on_replay():
    jf = fnnet.jit(lambda t, i: fnnet.ops.embedding(i, t))
    table = np.ones((5, 3), np.float32)
    jf(table, np.array([[0, 4], [1, 2]]))
    with pytest.raises(IndexError, match=r"indices\[1, 0\] = 5 is out of range for a table of 5 rows"):
        jf(table, np.array([[0, 4], [5, 2]]))
    assert jf.cache_info().misses == 1


def test_leaked_tracer_and_bad_static_give_clear_errors():
    leaked = []
    jf = fnnet.jit(lambda x: leaked.append(x) or x * 2.0)
    jf(np.ones(2, np.float32))
    with pytest.raises(ValueError, match="leaked|returned"):
        ops.tanh(leaked[0])
    with pytest.raises(TypeError, match="hashable"):
        fnnet.jit(lambda x, s: x, static_argnums=(1,))(np.ones(2), [1, 2])


def test_concurrent_calls_from_threads_are_correct():
    model = L.Sequential([L.Linear(16), L.Tanh(), L.Linear(4)])
    params = model.init(fnnet.random.key(0), (8, 6))
    jf = fnnet.jit(lambda p, x: model.apply(p, x))
    xs = [RNG.standard_normal((8, 6)).astype(np.float32) for _ in range(8)]
    expected = [model.apply(params, x) for x in xs]
    jf(params, xs[0])
    results = [None] * len(xs)

    def work(i):
        for _ in range(20):
            results[i] = jf(params, xs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r, e in zip(results, expected):
        _same(r, e)


def test_jit_inside_grad_and_nested_jit_run_as_part_of_the_outer_call():
    inner = fnnet.jit(lambda w, x: ops.sum(ops.tanh(x * w)))
    w, x = np.full(3, 0.3), np.arange(3.0)
    _same(fnnet.grad(inner)(w, x), fnnet.grad(lambda w, x: ops.sum(ops.tanh(x * w)))(w, x))
    outer = fnnet.jit(lambda w, x: inner(w, x) * 2.0)
    _same(outer(w, x), ops.sum(ops.tanh(x * w)) * 2.0)


def test_unsupported_transformations_inside_jit_raise_clearly():
    with pytest.raises(NotImplementedError, match="vjp inside fnnet.jit"):
        fnnet.jit(lambda x: fnnet.vjp(ops.tanh, x)[0])(np.ones(3))


def test_vmap_inside_jit_runs_its_per_example_loop_recorded():
    f = fnnet.vmap(fnnet.grad(lambda w, x: ops.sum(ops.tanh(w * x))), in_axes=(None, 0))
    jf = fnnet.jit(f)
    w = RNG.standard_normal(3)
    with pytest.warns(FallbackWarning):
        jf(w, np.ones((2, 3)))
        x = RNG.standard_normal((2, 3))
        _same(jf(w, x), f(w, x))


def test_check_finite_blocks_run_eagerly_and_check_every_call():
    jf = fnnet.jit(lambda x: ops.log(x))
    jf(np.ones(3))
    with fnnet.check_finite():
        with pytest.raises(ValueError, match="log"):
            jf(np.zeros(3))
    assert jf.cache_info().misses == 1


def test_jitted_train_step_raises_non_finite_on_replay_before_the_update():
    model = L.Sequential([L.Linear(8), L.ReLU(), L.Linear(3)])
    params = model.init(fnnet.random.key(0), (4, 5))
    opt = optim.sgd(0.1)
    step = fnnet.train.make_train_step(model, fnnet.losses.softmax_cross_entropy, opt)
    y = np.array([0, 1, 2, 0])
    step(params, {}, opt.init(params), np.ones((4, 5), np.float32), y, None)
    keep = fnnet.tree.map(np.copy, params)
    bad = np.ones((4, 5), np.float32)
    bad[1, 2] = np.nan
    with pytest.raises(fnnet.train.NonFiniteError, match="train step: the loss is nan; the update was not applied"):
        step(params, {}, opt.init(params), bad, y, None)
    _same(params, keep)
    assert step.jitted.cache_info().misses == 1


def test_donating_train_step_gives_the_same_bits_and_refuses_stale_params():
    model = L.Sequential([L.Linear(8), L.Tanh(), L.Linear(3)])
    opt = optim.adam(1e-2)
    params = model.init(fnnet.random.key(0), (4, 5))
    plain = fnnet.train.make_train_step(model, fnnet.losses.softmax_cross_entropy, opt)
    donating = fnnet.train.make_train_step(model, fnnet.losses.softmax_cross_entropy, opt, donate=True)
    e = (params, {}, opt.init(params))
    d = fnnet.tree.map(np.copy, e)
    stale = d[0]
    for _ in range(3):
        x, y = RNG.standard_normal((4, 5)).astype(np.float32), RNG.integers(0, 3, 4)
        *e, _ = plain(*e, x, y, None)
        *d, _ = donating(*d, x, y, None)
        _same(e, d)
    with pytest.raises(ValueError, match="donated"):
        donating(stale, {}, d[2], x, y, None)


def test_causal_transformer_language_model_step_is_bitwise_eager():
    from fnnet.examples import charlm

    model = charlm.build_model(vocab_size=11, context=8, width=16, layers=1, heads=2)
    params = model.init(fnnet.random.key(0), (None, 8))
    opt = optim.chain(optim.clip_by_global_norm(1.0),
                      optim.adamw(1e-3, weight_decay=0.1, mask=L.decay_mask(model, params)))

    def step(p, s, x, y):
        loss, g = fnnet.value_and_grad(lambda p: charlm.sequence_loss(model.apply(p, x), y))(p)
        p, s = opt.update_and_apply(g, s, p)
        return p, s, loss

    jstep = fnnet.jit(step)
    e = j = (params, opt.init(params))
    for _ in range(3):
        tokens = RNG.integers(0, 11, (4, 9))
        *e, le = step(*e, tokens[:, :-1], tokens[:, 1:])
        *j, lj = jstep(*j, tokens[:, :-1], tokens[:, 1:])
        _same((e, le), (j, lj))
    with pytest.raises(IndexError, match="out of range"):
        jstep(*j, np.full((4, 8), 11), tokens[:, 1:])
