"""``Remat``: identical params, outputs, state and (bitwise) gradients; less tape memory; configs, errors and
activation recording through a checkpointed block."""

import json

import numpy as np
import pytest

import fnnet
import fnnet.layers as L
import fnnet.ops as ops

KEY = fnnet.random.key(0)


def _leaves_equal(a, b):
    la, lb = fnnet.tree.leaves(a), fnnet.tree.leaves(b)
    assert fnnet.tree.structure(a) == fnnet.tree.structure(b)
    for u, v in zip(la, lb):
        assert u.dtype == v.dtype and u.shape == v.shape
        np.testing.assert_array_equal(u, v)


def _mlp(depth, width, pairs, remat):
    """``depth`` blocks of ``pairs`` x (Linear, ReLU), each wrapped in Remat when ``remat``, then a head."""
    blocks = []
    for _ in range(depth):
        block = L.Sequential([layer for _ in range(pairs) for layer in (L.Linear(width), L.ReLU())])
        blocks.append(L.Remat(block) if remat else block)
    return L.Sequential([*blocks, L.Linear(10)])


def _xy(batch, features, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, features)).astype(np.float32), (np.arange(batch) % 10).astype(np.int64)


def test_params_state_and_shapes_are_the_wrapped_layers():
    assert L.Remat(L.Linear(3)).init(KEY, (None, 4)).keys() == {"weight", "bias"}
    _leaves_equal(L.Remat(L.Linear(3)).init(KEY, (None, 4)), L.Linear(3).init(KEY, (None, 4)))
    block = L.Sequential([L.Conv2D(4, 3, padding=1), L.BatchNorm(), L.ReLU()])
    shape = (None, 2, 6, 6)
    _leaves_equal(L.Remat(block).init(KEY, shape), block.init(KEY, shape))
    _leaves_equal(L.Remat(block).init_state(shape), block.init_state(shape))
    assert L.Remat(block).has_state and not L.Remat(L.Linear(2)).has_state
    assert L.Remat(block).out_shape(shape) == block.out_shape(shape) == (None, 4, 6, 6)
    plain, ckpt = _mlp(3, 8, 1, False), _mlp(3, 8, 1, True)
    _leaves_equal(plain.init(KEY, (None, 5)), ckpt.init(KEY, (None, 5)))  # interchangeable params


def test_mlp_gradients_bitwise_identical():
    x, y = _xy(32, 16)
    plain, ckpt = _mlp(4, 16, 1, False), _mlp(4, 16, 1, True)
    params = plain.init(KEY, (None, 16))

    def loss(model):
        return lambda p, xv: fnnet.losses.softmax_cross_entropy(model.apply(p, xv), y)

    (v0, g0) = fnnet.value_and_grad(loss(plain), argnums=(0, 1))(params, x)
    (v1, g1) = fnnet.value_and_grad(loss(ckpt), argnums=(0, 1))(params, x)
    np.testing.assert_array_equal(v0, v1)
    _leaves_equal(g0, g1)
    np.testing.assert_array_equal(ckpt.apply(params, x), plain.apply(params, x))  # outside grad too


def _cnn_block():
    return L.Sequential([L.Conv2D(4, 3, padding=1), L.BatchNorm(momentum=0.3), L.ReLU(), L.Dropout(0.4)])


@pytest.mark.parametrize("nested", [False, True], ids=["remat", "nested-remat"])
def test_cnn_block_with_batchnorm_and_dropout_in_training(nested):
    """Gradients and returned state bitwise identical; the dropout mask of the recomputation agrees."""
    inner = L.Remat(_cnn_block()) if nested else _cnn_block()
    ckpt_block = L.Remat(L.Sequential([inner, L.Conv2D(3, 1)])) if nested else L.Remat(inner)
    plain = L.Sequential([_cnn_block(), L.Flatten(), L.Linear(5)]) if not nested else \
        L.Sequential([L.Sequential([_cnn_block(), L.Conv2D(3, 1)]), L.Flatten(), L.Linear(5)])
    ckpt = L.Sequential([ckpt_block, L.Flatten(), L.Linear(5)])
    shape = (6, 2, 5, 5)
    params, state = plain.init(KEY, shape), plain.init_state(shape)
    _leaves_equal(params, ckpt.init(KEY, shape))
    state = fnnet.tree.map(lambda s: s + np.float32(0.5), state)  # non-trivial running statistics
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    labels = np.arange(6) % 5
    step_key = fnnet.random.key(42)

    def objective(model):
        def f(p, xv, s):
            out, new_state = model.apply(p, xv, state=s, key=step_key, train=True)
            return fnnet.losses.softmax_cross_entropy(out, labels), new_state
        return f

    (v0, s0), g0 = fnnet.value_and_grad(objective(plain), argnums=(0, 1), has_aux=True)(params, x, state)
    (v1, s1), g1 = fnnet.value_and_grad(objective(ckpt), argnums=(0, 1), has_aux=True)(params, x, state)
    np.testing.assert_array_equal(v0, v1)
    _leaves_equal(g0, g1)
    _leaves_equal(s0, s1)  # the state of the first forward, updated once
    assert not any(fnnet.autodiff.is_tracer(s) for s in fnnet.tree.leaves(s1))
    y_plain, s_plain = plain.apply(params, x, state=state, key=step_key, train=True)
    y_ckpt, s_ckpt = ckpt.apply(params, x, state=state, key=step_key, train=True)
    np.testing.assert_array_equal(y_plain, y_ckpt)
    _leaves_equal(s_plain, s_ckpt)
    _leaves_equal(s_plain, s1)
    mean = fnnet.tree.leaves(s_plain)[0]
    assert not np.array_equal(mean, fnnet.tree.leaves(state)[0])  # training did move the statistics
    # a different key gives a different mask (so the agreement above is not vacuous)
    other = ckpt.apply(params, x, state=state, key=fnnet.random.key(7), train=True)[0]
    assert not np.array_equal(other, y_ckpt)


def test_train_step_with_remat_matches_plain():
    model_plain = L.Sequential([_cnn_block(), L.Flatten(), L.Linear(3)])
    model_ckpt = L.Sequential([L.Remat(_cnn_block()), L.Flatten(), L.Linear(3)])
    shape = (8, 1, 4, 4)
    params, state = model_plain.init(KEY, shape), model_plain.init_state(shape)
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    y = np.arange(8) % 3
    opt = fnnet.optim.adam(1e-2)
    results = []
    for model in (model_plain, model_ckpt):
        step = fnnet.train.make_train_step(model, fnnet.losses.softmax_cross_entropy, opt)
        p, s, o = params, state, opt.init(params)
        for i in range(3):
            p, s, o, metrics = step(p, s, o, x, y, fnnet.random.fold_in(KEY, i))
        results.append((p, s, metrics))
    _leaves_equal(results[0][0], results[1][0])
    _leaves_equal(results[0][1], results[1][1])
    assert results[0][2] == results[1][2]


def test_peak_tape_bytes_at_least_halved_for_16_block_mlp():
    """16 blocks of 3 (Linear, ReLU) pairs, width 64, batch 256, every block wrapped.

    ``peak_residual_bytes`` counts every array a tape entry keeps, params included (a checkpoint entry keeps
    the block's params; each Linear keeps its weight), and counts an array saved by two entries twice (a
    ReLU's output is also the next Linear's input).  Blocks of several layers and a batch larger than the
    width keep this measure close to the activation memory: about 4x here; the distinct activation arrays
    drop from 48 to 16 (+ 3 recomputed at a time during the backward).  A single (Linear, ReLU) pair per
    block saves no real memory (one distinct array per pair either way)."""
    x, y = _xy(256, 64)
    peaks, grads = {}, {}
    for remat in (False, True):
        model = _mlp(16, 64, 3, remat)
        params = model.init(KEY, (None, 64))
        grads[remat] = fnnet.grad(lambda p: fnnet.losses.softmax_cross_entropy(model.apply(p, x), y))(params)
        peaks[remat] = fnnet.last_tape_stats()["peak_residual_bytes"]
    assert peaks[False] >= 2 * peaks[True], peaks
    block_inputs = 16 * x.nbytes + fnnet.tree.nbytes(params) - fnnet.tree.nbytes(params[str(16)])
    assert peaks[True] <= block_inputs + fnnet.tree.nbytes(params[str(16)]) + x.nbytes + 4096  # + head, loss
    _leaves_equal(grads[False], grads[True])


def test_tape_of_a_remat_block_keeps_only_its_inputs():
    block = L.Sequential([L.Linear(32), L.Tanh(), L.Linear(32), L.Tanh()])
    x = np.ones((16, 8), np.float32)
    params = block.init(KEY, x.shape)
    fnnet.grad(lambda p: ops.sum(L.Remat(block).apply(p, x)))(params)
    assert fnnet.last_tape_stats()["peak_residual_bytes"] == fnnet.tree.nbytes(params)  # x is not traced
    fnnet.grad(lambda p, xv: ops.sum(L.Remat(block).apply(p, xv)), argnums=(0, 1))(params, x)
    assert fnnet.last_tape_stats()["peak_residual_bytes"] == fnnet.tree.nbytes(params) + x.nbytes


def test_config_round_trip():
    model = L.Sequential([L.Remat(L.Sequential([L.Linear(4), L.ReLU()])), L.Remat(L.Remat(_cnn_block())),
                          L.Remat(L.Linear(2))])
    config = L.to_config(model)
    assert config["layers"][0]["layer"] == "Remat"
    assert L.from_config(json.loads(json.dumps(config))) == model


def test_error_paths_stay_readable():
    model = L.Sequential([L.Remat(L.Sequential([L.Linear(4), L.Linear(3)])), L.Remat(L.Linear(2))])
    params = model.init(KEY, (None, 5))
    bad = fnnet.tree.map(lambda p: p, params)
    bad["0"]["1"]["weight"] = np.zeros((6, 3), np.float32)
    with pytest.raises(ValueError, match=r"^0/1 \(Linear\): expected input \(\.\.\., 6\)"):
        model.apply(bad, np.ones((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"^0/1 \(Linear\): expected input \(\.\.\., 6\)"):
        fnnet.grad(lambda p: ops.sum(model.apply(p, np.ones((2, 5), np.float32))))(bad)
    with pytest.raises(ValueError, match=r"^0 \(Remat\(Linear\)\): params do not match.*missing key\(s\) \['weight'\]"):
        L.Sequential([L.Remat(L.Linear(2))]).apply({"0": {"bias": np.zeros(2, np.float32)}},
                                                   np.ones((1, 3), np.float32))
    with pytest.raises(TypeError, match="Remat: block must be a layer"):
        L.Remat("relu")
    with pytest.raises(ValueError, match=r"Dropout: a random key is needed"):
        L.Remat(L.Dropout(0.5)).apply({}, np.ones((2, 2), np.float32), train=True)


def test_activation_recording_through_remat_matches_plain():
    x, y = _xy(8, 6)
    plain, ckpt = _mlp(2, 6, 2, False), _mlp(2, 6, 2, True)
    plain = L.Sequential([*plain.layers[:-1], L.Linear(10)])
    ckpt = L.Sequential([*ckpt.layers[:-1], L.Remat(L.Linear(10))])  # a wrapped single layer too
    params = plain.init(KEY, (None, 6))
    recs = []
    for model in (plain, ckpt):
        with L.record_activations(gradients=True) as rec:
            fnnet.grad(lambda p: fnnet.losses.softmax_cross_entropy(model.apply(p, x), y))(params)
        recs.append(rec)
    # the recomputation in the backward records under the block's own paths, not at the top level
    for which in ("activations", "gradients"):
        a, b = getattr(recs[0], which), getattr(recs[1], which)
        for block in ("0", "1"):
            assert set(a[block]) <= set(b[block]), (which, a[block].keys(), b[block].keys())
            for name in a[block]:
                assert a[block][name]["mean"] == b[block][name]["mean"], (which, block, name)
        assert a["2"]["mean"] == b["2"]["mean"]
        assert a["2"]["std"] == b["2"]["std"]
    assert recs[0].types == recs[1].types  # Remat is transparent: same paths, the wrapped layers' types
    assert recs[1].types["0/1"] == "ReLU" and recs[1].types["2"] == "Linear"


def test_block_inputs_are_freed_as_the_backward_passes_them():
    import gc
    import weakref

    blocks = [L.Remat(L.Sequential([L.Linear(8), L.ReLU()])) for _ in range(6)]
    params = [b.init(fnnet.random.key(i), (None, 8)) for i, b in enumerate(blocks)]
    x = np.ones((4, 8), np.float32)
    outputs, alive = [], []

    def probe(g):
        alive.append([r() is not None for r in outputs[1:-1]])

    def loss(ps):
        h = x
        for i, (block, p) in enumerate(zip(blocks, ps)):
            h = block.apply(p, h)
            outputs.append(weakref.ref(fnnet.stop_gradient(h)))
            if i == 0:
                h = ops.gradient_probe(h, probe)  # its backward runs after every later block's
        return ops.sum(h)

    gc.disable()  # what matters is whether plain reference counting frees them
    try:
        fnnet.grad(loss)(params)
    finally:
        gc.enable()
    assert alive == [[False] * 4]


def test_the_recomputed_block_is_freed_as_its_backward_walks():
    """Inside the backward of a checkpointed block, a recomputed array is released as soon as the entries
    that keep it have run: when the walk reaches the block's first op, neither the recomputed output (kept
    by no entry of the block: a matmul saves its inputs) nor the intermediates are alive, so the next
    block's recomputation never starts on top of this one's; nothing survives the block's backward."""
    import gc
    import weakref

    rng = np.random.default_rng(0)
    w1, w2 = (rng.standard_normal((8, 8)) for _ in range(2))
    x = rng.standard_normal((4, 8))
    recomputed, alive = [], []

    def probe(g):
        alive.append([r() is not None for r in recomputed])

    def block(w1, w2, h):
        h = ops.gradient_probe(h, probe)  # the block's first op: its backward runs after all the others'
        a = ops.tanh(h @ w1)
        out = a @ w2
        recomputed.extend(weakref.ref(v.value) for v in (a, out) if fnnet.autodiff.is_tracer(v))
        return out

    # the plain gradient first: a kernel compiled during the probed call would keep its arguments a while
    expected = fnnet.grad(lambda *args: ops.sum(block(*args) ** 2), argnums=(0, 1, 2))(w1, w2, x)
    recomputed.clear()
    alive.clear()
    gc.disable()  # what matters is whether plain reference counting frees them
    try:
        grads = fnnet.grad(lambda *args: ops.sum(fnnet.checkpoint(block)(*args) ** 2), argnums=(0, 1, 2))(w1, w2, x)
        after = [r() is not None for r in recomputed]
    finally:
        gc.enable()
    assert alive == [[False, False]] and after == [False, False]
    _leaves_equal(grads, expected)


def _record_fused_calls(monkeypatch, layer_type):
    """A list that gets, per fused call of ``layer_type``, whether it ran inside a recomputation."""
    calls, fused = [], layer_type.apply_fused

    def spy(self, params, x, activation):
        calls.append(ops.in_recomputation(x))
        return fused(self, params, x, activation)

    monkeypatch.setattr(layer_type, "apply_fused", spy)
    return calls


def test_recomputation_runs_fusable_pairs_as_separate_ops(monkeypatch):
    """The backward's re-run of a block does not fuse Linear+ReLU: a fused VJP keeps the pair's output and
    its incoming cotangent until the input cotangent is made, which was the peak of the remat step.  The
    first forward (no tape) still fuses, and the gradients stay bitwise the plain model's."""
    calls = _record_fused_calls(monkeypatch, L.Linear)
    x, y = _xy(16, 8)
    plain, ckpt = _mlp(2, 8, 3, False), _mlp(2, 8, 3, True)
    params = plain.init(KEY, (None, 8))
    grads = [fnnet.grad(lambda p, xv: fnnet.losses.softmax_cross_entropy(m.apply(p, xv), y), argnums=(0, 1))(params, x)
             for m in (plain, ckpt)]
    assert calls == [False] * (2 * 2 * 3)  # each model's first forward: 2 blocks x 3 fused pairs; none in the re-runs
    _leaves_equal(grads[0], grads[1])


def test_recomputation_keeps_conv_relu_fused(monkeypatch):
    """Conv2D -> ReLU stays fused in the re-run (``fuses_when_recomputing``): its kernels mask the cotangent
    one sample at a time, so the fused backward holds less than the separate ops; gradients bitwise."""
    calls = _record_fused_calls(monkeypatch, L.Conv2D)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 2, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, size=4)

    def model(remat):
        conv = L.Sequential([L.Conv2D(3, 3, padding=1), L.ReLU(), L.MaxPool2D(2)])
        return L.Sequential([L.Remat(conv) if remat else conv, L.Flatten(), L.Linear(3)])

    plain, ckpt = model(False), model(True)
    params = plain.init(KEY, (None, 2, 8, 8))
    grads = [fnnet.grad(lambda p, xv: fnnet.losses.softmax_cross_entropy(m.apply(p, xv), y), argnums=(0, 1))(params, x)
             for m in (plain, ckpt)]
    assert calls == [False, False, True]  # plain forward, remat's first forward, remat's re-run
    _leaves_equal(grads[0], grads[1])


def test_in_recomputation_is_true_only_for_the_re_run():
    seen = []

    def block(w, h):
        seen.append(ops.in_recomputation(h))
        return ops.tanh(h @ w)

    w, x = np.ones((3, 3)), np.ones((2, 3))
    fnnet.grad(lambda w, x: ops.sum(fnnet.checkpoint(block)(w, x)), argnums=(0, 1))(w, x)
    assert seen == [False, True]  # first forward on plain values, then the backward's re-run
    assert not ops.in_recomputation(x)
    fnnet.grad(lambda w, x: ops.sum(block(w, x)), argnums=(0, 1))(w, x)  # an ordinary tape
    assert seen[-1] is False
