"""``update_and_apply``: bitwise the same as ``update`` + ``apply_updates`` for every optimizer, with and
without buffer donation; nothing mutated without it; donated buffers reused; donated arrays refused when
passed again; aliasing refused; leaves that cannot be written in place fall back to new arrays."""

import numpy as np
import pytest

from fnnet import optim, tree
from fnnet.optim import schedules as S

from .test_optim import make_grads, make_params



def MASK(params):  # noqa: N802  (a mask given as a function of the params)
    return tree.map_with_path(lambda path, x: not path.endswith("bias"), params)


def LABELS(params):  # noqa: N802
    return tree.map_with_path(lambda path, x: "frozen" if path == "layers/1/weight" else
                              "sgd" if path.endswith("bias") else "adam", params)


# name, factory; the fused optimizers have a fused step, the others go through update + in-place add
OPTIMIZERS = [
    ("sgd", lambda: optim.sgd(0.1)),
    ("sgd_decay", lambda: optim.sgd(0.1, weight_decay=0.01)),
    ("sgd_momentum_decay", lambda: optim.sgd(0.1, momentum=0.9, weight_decay=0.01)),
    ("sgd_nesterov", lambda: optim.sgd(0.1, momentum=0.9, nesterov=True)),
    ("adam", lambda: optim.adam(1e-2)),
    ("adam_schedule", lambda: optim.adam(S.warmup_cosine_decay(0.0, 1e-2, 3, 10))),
    ("adamw", lambda: optim.adamw(1e-2, weight_decay=0.1)),
    ("adamw_masked", lambda: optim.adamw(1e-2, weight_decay=0.1, mask=MASK)),
    ("rmsprop", lambda: optim.rmsprop(1e-2)),
    ("rmsprop_centered_momentum", lambda: optim.rmsprop(1e-2, momentum=0.9, centered=True)),
    ("adagrad", lambda: optim.adagrad(0.1, initial_accumulator_value=0.1)),
    ("adam_chain", lambda: optim.adam(1e-2, fused=False)),
    ("clip_then_sgd", lambda: optim.chain(optim.clip_by_global_norm(0.5), optim.sgd(0.1, momentum=0.9))),
    ("masked_adam", lambda: optim.masked(optim.adam(1e-2), MASK)),
    ("multi_transform", lambda: optim.multi_transform(
        {"adam": optim.adamw(1e-2), "sgd": optim.sgd(0.1), "frozen": optim.set_to_zero()}, LABELS)),
]
IDS = [name for name, _ in OPTIMIZERS]
FUSED = {"sgd", "sgd_decay", "sgd_momentum_decay", "sgd_nesterov", "adam", "adam_schedule", "adamw", "adamw_masked",
         "rmsprop", "rmsprop_centered_momentum", "adagrad"}


def _copies(t):
    return [np.array(x, copy=True) for x in tree.leaves(t)]


def _assert_bitwise(a, b):
    assert tree.structure(a) == tree.structure(b)
    for x, y in zip(tree.leaves(a), tree.leaves(b)):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,factory", OPTIMIZERS, ids=IDS)
def test_update_and_apply_is_bitwise_update_plus_apply(name, factory, dtype):
    opt = factory()
    params = make_params(dtype)
    params["empty"] = np.zeros((0, 3), dtype)                  # 0-size leaves go through the kernels too
    ref_p = plain_p = donated_p = params
    ref_s = plain_s = donated_s = opt.init(params)
    for g in make_grads(params, 4):
        updates, ref_s = opt.update(g, ref_s, ref_p)
        ref_p = optim.apply_updates(ref_p, updates)
        before = [_copies(plain_p), _copies(plain_s), _copies(g)]
        new_p, new_s = opt.update_and_apply(g, plain_s, plain_p)
        for old, now in zip(before, [_copies(plain_p), _copies(plain_s), _copies(g)]):
            for x, y in zip(old, now):
                np.testing.assert_array_equal(x, y)              # nothing mutated without donation
        plain_p, plain_s = new_p, new_s
        donated_p, donated_s = opt.update_and_apply(g, donated_s, donated_p, donate=True)
        _assert_bitwise(plain_p, ref_p)
        _assert_bitwise(plain_s, ref_s)
        _assert_bitwise(donated_p, ref_p)
        _assert_bitwise(donated_s, ref_s)


@pytest.mark.parametrize("name,factory", OPTIMIZERS, ids=IDS)
def test_donation_writes_into_the_old_buffers(name, factory):
    """Params + grads + state and nothing more: the new params (and, fused, the new buffers) are the old
    memory, as new array objects."""
    opt = factory()
    params = make_params(np.float32)
    state = opt.init(params)
    g1, g2 = make_grads(params, 2)
    params, state = opt.update_and_apply(g1, state, params, donate=True)  # buffers of their final kind
    new_params, new_state = opt.update_and_apply(g2, state, params, donate=True)
    for old, new in zip(tree.leaves(params), tree.leaves(new_params)):
        assert new is not old and np.shares_memory(new, old)
    old_buffers = [x for x in tree.leaves(state) if x.dtype.kind == "f"]
    new_buffers = [x for x in tree.leaves(new_state) if x.dtype.kind == "f"]
    assert len(old_buffers) == len(new_buffers)
    for old, new in zip(old_buffers, new_buffers):
        assert new is not old
        assert np.shares_memory(new, old) == (name in FUSED)


def test_a_donated_array_passed_again_raises():
    opt = optim.adam(1e-2)
    params = make_params()
    state = opt.init(params)
    g = make_grads(params, 1)[0]
    new_params, new_state = opt.update_and_apply(g, state, params, donate=True)
    stale = r"leaf at 'layers/0/bias' was donated to an earlier call \(update_and_apply"
    with pytest.raises(ValueError, match=f"fnnet.optim.adam.update_and_apply: params {stale}"):
        opt.update_and_apply(g, new_state, params)
    with pytest.raises(ValueError, match=f"fnnet.optim.adam.update_and_apply: opt_state.mu {stale}"):
        opt.update_and_apply(g, state, new_params, donate=True)
    with pytest.raises(ValueError, match=f"fnnet.optim.adam: opt_state.mu {stale}"):
        opt.update(g, state, new_params)
    with pytest.raises(ValueError, match=f"fnnet.optim.apply_updates: params {stale}"):
        optim.apply_updates(params, g)
    with pytest.raises(ValueError, match=f"fnnet.optim.sgd: params {stale}"):
        optim.sgd(0.1, momentum=0.9).init(params)
    with pytest.raises(ValueError, match=f"fnnet.optim.update_and_apply: params {stale}"):
        optim.adam(1e-2, fused=False).update_and_apply(g, optim.adam(1e-2, fused=False).init(new_params), params)
    again, _ = opt.update_and_apply(g, new_state, new_params, donate=True)  # the returned trees are valid
    assert all(np.isfinite(x).all() for x in tree.leaves(again))
    with pytest.raises(ValueError, match=f"params {stale}"):                 # until donated in turn
        optim.apply_updates(new_params, g)


def test_donating_shared_memory_raises_before_anything_is_written():
    opt = optim.sgd(0.1, momentum=0.9)
    tied = {"a": np.ones(3), "b": None}
    tied["b"] = tied["a"]
    with pytest.raises(ValueError, match="params leaf at 'a' and params leaf at 'b' share memory"):
        opt.update_and_apply({"a": np.ones(3), "b": np.ones(3)}, opt.init(tied), tied, donate=True)
    params = {"w": np.ones((2, 3)), "v": np.ones(3)}
    state = opt.init(params)
    snapshot = _copies((params, state))
    for grads, culprit in [({"w": params["w"], "v": np.ones(3)}, "grads leaf at 'w' shares memory with params "
                            "leaf at 'w'"), ({"w": np.ones((2, 3)), "v": params["w"][1]}, "grads leaf at 'v' shares "
                            "memory with params leaf at 'w'"),
                           ({"w": np.ones((2, 3)), "v": state.momentum_buffer["v"]}, "grads leaf at 'v' shares "
                            "memory with opt_state.momentum_buffer leaf at 'v'")]:
        with pytest.raises(ValueError, match=culprit):
            opt.update_and_apply(grads, state, params, donate=True)
    for x, y in zip(snapshot, _copies((params, state))):
        np.testing.assert_array_equal(x, y)
    shared_state = optim.SgdState(state.count, {"w": params["w"], "v": np.zeros(3)})
    with pytest.raises(ValueError, match="opt_state.momentum_buffer leaf at 'w' share memory"):
        opt.update_and_apply({"w": np.ones((2, 3)), "v": np.ones(3)}, shared_state, params, donate=True)
    chained = optim.adam(1e-2, fused=False)
    with pytest.raises(ValueError, match="fnnet.optim.update_and_apply: grads leaf at 'w' shares memory"):
        chained.update_and_apply({"w": params["w"], "v": np.ones(3)}, chained.init(params), params, donate=True)
    out, _ = opt.update_and_apply({"w": params["w"], "v": np.ones(3)}, state, params)  # fine without donation
    np.testing.assert_array_equal(out["w"], params["w"] - 0.1 * params["w"])


def test_leaves_not_writable_in_place_get_new_arrays(tmp_path):
    """Read-only, transposed and memmapped leaves: new arrays (a memmap's file is never written), the same
    bits, the inputs unchanged, and still refused afterwards (donated means given up)."""
    readonly = np.arange(3.0)
    readonly.flags.writeable = False
    mapped = np.memmap(tmp_path / "w.bin", dtype=np.float64, mode="w+", shape=(2,))
    mapped[:] = [1.0, 2.0]
    params = {"r": readonly, "t": np.arange(6.0).reshape(2, 3).T, "m": mapped, "c": np.ones(2)}
    opt = optim.adam(1e-2)
    state = opt.init(params)
    g = tree.map(lambda x: np.full(x.shape, 0.5), params)
    updates, ref_state = opt.update(g, state, params)
    reference = optim.apply_updates(params, updates)
    new_params, new_state = opt.update_and_apply(g, state, params, donate=True)
    _assert_bitwise(new_params, reference)
    _assert_bitwise(new_state, ref_state)
    for key in ("r", "t", "m"):
        assert not np.shares_memory(new_params[key], params[key])
    assert np.shares_memory(new_params["c"], params["c"])
    np.testing.assert_array_equal(np.asarray(mapped), [1.0, 2.0])
    np.testing.assert_array_equal(readonly, np.arange(3.0))
    with pytest.raises(ValueError, match="params leaf at 'r' was donated"):
        optim.apply_updates({"r": params["r"]}, {"r": g["r"]})


def test_a_buffer_the_update_passes_on_unchanged_stays_valid():
    """Without a fused step only what ``update`` replaced is given up: a custom transformation that
    returns its state as it came keeps it usable."""
    keep = optim.GradientTransformation(lambda p: (np.zeros(3),), lambda g, s, p=None: (g, s))
    params = {"w": np.zeros(3)}
    state = keep.init(params)
    for _ in range(3):
        params, state = keep.update_and_apply({"w": np.ones(3)}, state, params, donate=True)
    np.testing.assert_array_equal(params["w"], [3.0, 3.0, 3.0])


def test_update_and_apply_argument_errors():
    opt = optim.sgd(0.1)
    params = make_params()
    g = make_grads(params, 1)[0]
    with pytest.raises(TypeError, match="fnnet.optim.update_and_apply: donate must be a bool, got str 'yes'"):
        opt.update_and_apply(g, opt.init(params), params, donate="yes")
    with pytest.raises(ValueError, match="fnnet.optim.update_and_apply: params is None"):
        opt.update_and_apply(g, opt.init(params), None)
    half = tree.map(lambda x: x.astype(np.float16), params)
    with pytest.raises(TypeError, match="fnnet.optim.sgd.update_and_apply: grads leaf at 'layers/0/bias' must be a "
                                        "float32 or float64 array, got dtype float16"):
        opt.update_and_apply(half, opt.init(params), half, donate=True)
    with pytest.raises(ValueError, match="fnnet.optim.sgd.update_and_apply: params does not have the structure"):
        opt.update_and_apply(g, opt.init(params), {"w": np.zeros(3)}, donate=True)
