"""Tests for fnnet.io: checkpoint round trips (every dtype, nested trees, optimizer states), failed writes,
corrupt files, safetensors, and importing PyTorch state_dicts.  Crash safety (SIGKILL mid-save), stale
temporary files and format versions are in test_io_crash.py."""

import collections
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fnnet
from fnnet import io, optim, tree
from fnnet import layers as L

CORRUPT = r"is not a valid fnnet checkpoint \(truncated or corrupt\)"

DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
          np.uint32, np.uint64, np.bool_, np.complex64, np.dtype(">f4"), np.dtype(">i8")]
SHAPES = [(), (0,), (2, 0, 3), (3, 4), (2, 1, 3)]


def _array(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype.newbyteorder("=")).astype(dtype)
    values = rng.standard_normal(shape) * 100
    if dtype.kind == "c":
        values = values + 1j * rng.standard_normal(shape)
    return values.astype(dtype)


def assert_same_tree(a, b):
    """Same structure (container types included), and leaves with identical type, dtype, shape, values."""
    assert tree.structure(a) == tree.structure(b), (tree.structure(a), tree.structure(b))
    for x, y in zip(tree.leaves(a), tree.leaves(b)):
        assert type(x) is type(y), (type(x), type(y))
        if isinstance(x, (np.ndarray, np.generic)):
            assert x.dtype == y.dtype and x.shape == y.shape
            np.testing.assert_array_equal(x, y)
        else:
            assert x == y


@pytest.mark.parametrize("dtype", DTYPES, ids=[np.dtype(d).str for d in DTYPES])
def test_round_trip_every_dtype_and_shape(tmp_path, dtype):
    params = {f"s{i}": _array(dtype, shape, i) for i, shape in enumerate(SHAPES)}
    io.save(tmp_path / "c.npz", params)
    loaded = io.load(tmp_path / "c.npz")
    assert_same_tree(loaded.params, params)
    assert loaded.state is None and loaded.opt_state is None and loaded.config is None and loaded.metadata is None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shapes=st.lists(st.lists(st.integers(0, 3), max_size=3), min_size=1, max_size=4),
       dtype=st.sampled_from(DTYPES), nest=st.sampled_from(["dict", "list", "tuple"]))
def test_round_trip_hypothesis_shapes(tmp_path, shapes, dtype, nest):
    arrays = [_array(dtype, tuple(s), i) for i, s in enumerate(shapes)]
    params = {"dict": {str(i): a for i, a in enumerate(arrays)}, "list": arrays, "tuple": tuple(arrays)}[nest]
    io.save(tmp_path / "h.npz", {"x": params, "y": [{}, ()]})
    assert_same_tree(io.load(tmp_path / "h.npz").params, {"x": params, "y": [{}, ()]})


Custom = collections.namedtuple("Custom", ["a", "b"])


def nested_tree():
    return {
        "layers": [{"weight": np.ones((3, 2), np.float32), "bias": np.zeros(2, np.float16)}, {}, []],
        "empty_dict": {}, "empty_list": [], "empty_tuple": (),
        "tuple": (np.arange(3), [np.int32(4), np.float64(2.5), np.bool_(True)]),
        "python": [1, 2.5, True, -(2 ** 62)],
        "none": None,
        "zero_size": np.zeros((0, 4), np.float32),
        7: {"int key": np.array(3, np.int8)},
        "weird/key with spaces": np.ones(2),
        "weird": {"key with spaces": np.zeros(2)},   # same tree path as the key above: names must not collide
    }


def test_round_trip_nested_containers(tmp_path):
    params = nested_tree()
    state = {"0": {}, "1": {"mean": np.zeros(3, np.float32), "var": np.ones(3, np.float32)}}
    io.save(tmp_path / "c.npz", params, state=state, metadata={"step": 10, "note": "héllo", "loss": [0.5, 0.25]})
    loaded = io.load(tmp_path / "c.npz")
    assert_same_tree(loaded.params, params)
    assert_same_tree(loaded.state, state)
    assert list(loaded.params) == list(params)                       # key order kept
    assert loaded.metadata == {"step": 10, "note": "héllo", "loss": [0.5, 0.25]}
    assert loaded["params"] is loaded.params and set(loaded.keys()) == {"params", "state", "opt_state", "config",
                                                                          "metadata"}
    # namedtuples from outside fnnet come back as plain tuples, and restore_opt_state rebuilds them
    io.save(tmp_path / "n.npz", {}, opt_state=Custom(np.ones(2), (np.zeros(1),)))
    raw = io.load(tmp_path / "n.npz").opt_state
    assert type(raw) is tuple
    restored = io.restore_opt_state(Custom(np.zeros(2), (np.zeros(1),)), raw)
    assert type(restored) is Custom and np.array_equal(restored.a, np.ones(2))


def test_optimizer_state_round_trip_and_resume(tmp_path):
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((4, 3)).astype(np.float32), "b": np.zeros(3, np.float32)}
    grads = [tree.map(lambda p: rng.standard_normal(p.shape).astype(np.float32), params) for _ in range(4)]
    for opt in (optim.adam(1e-2), optim.sgd(0.1, momentum=0.9),
                optim.chain(optim.clip_by_global_norm(1.0), optim.scale_by_adam(), optim.scale_by_learning_rate(0.1))):
        p, s = params, opt.init(params)
        for g in grads[:2]:
            u, s = opt.update(g, s, p)
            p = optim.apply_updates(p, u)
        io.save(tmp_path / "opt.npz", p, opt_state=s)
        ck = io.load(tmp_path / "opt.npz")
        assert_same_tree(ck.opt_state, s)                              # fnnet state types are rebuilt
        assert_same_tree(io.restore_opt_state(opt.init(params), ck.opt_state), s)
        p1, s1, p2, s2 = p, s, ck.params, ck.opt_state
        for g in grads[2:]:
            u1, s1 = opt.update(g, s1, p1)
            p1 = optim.apply_updates(p1, u1)
            u2, s2 = opt.update(g, s2, p2)
            p2 = optim.apply_updates(p2, u2)
        assert_same_tree(p1, p2)


def test_restore_opt_state_errors():
    template = optim.adam(1e-3).init({"w": np.zeros(3)})
    with pytest.raises(ValueError, match="the template has 3 leaves, the loaded state has 1"):
        io.restore_opt_state(template, (np.zeros(3),))
    wrong = optim.adam(1e-3).init({"w": np.zeros(4)})
    with pytest.raises(ValueError, match=r"leaf '1/w' is float64\[4\] in the loaded state but float64\[3\]"):
        io.restore_opt_state(template, wrong)


def test_config_round_trip(tmp_path):
    model = L.Sequential([L.Flatten(), L.Linear(5), L.ReLU(), L.Linear(2, use_bias=False)])
    params = model.init(fnnet.random.key(0), (None, 1, 2, 2))
    io.save(tmp_path / "m.npz", params, config=model)
    ck = io.load(tmp_path / "m.npz")
    assert L.from_config(ck.config) == model
    io.save(tmp_path / "m2.npz", params, config=L.to_config(model))
    assert io.load(tmp_path / "m2.npz").config == L.to_config(model)


def test_save_rejects_what_it_cannot_store(tmp_path):
    with pytest.raises(TypeError, match="the leaf at 'params/name' is a str"):
        io.save(tmp_path / "x.npz", {"name": "abc"})
    with pytest.raises(TypeError, match="object and structured arrays cannot be saved"):
        io.save(tmp_path / "x.npz", {"o": np.array([None, 1], dtype=object)})
    with pytest.raises(TypeError, match="dict key .* has type float"):
        io.save(tmp_path / "x.npz", {1.5: np.zeros(1)})
    with pytest.raises(TypeError, match="must be JSON-serialisable"):
        io.save(tmp_path / "x.npz", {}, metadata={"a": object()})
    assert not os.listdir(tmp_path)                                   # nothing written, no temp files


@pytest.mark.parametrize("unnamed", [True, False], ids=["unnamed-temp", "named-fallback"])
def test_failed_write_keeps_previous_file_and_leaves_no_temp(tmp_path, monkeypatch, unnamed):
    from fnnet.io import atomic

    if not unnamed:
        monkeypatch.setattr(atomic, "_open_unnamed", lambda dir_fd: None)
    path = tmp_path / "c.npz"
    io.save(path, {"w": np.ones(3)})

    def broken_savez(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        io.save(path, {"w": np.zeros(3)})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["c.npz"]
    np.testing.assert_array_equal(io.load(path).params["w"], np.ones(3))


def test_corrupt_and_truncated_files(tmp_path):
    path = tmp_path / "good.npz"
    io.save(path, {"w": np.arange(1000, dtype=np.float32), "b": np.ones(3)}, metadata={"step": 1})
    data = path.read_bytes()
    cases = {
        "empty": b"",
        "garbage": b"this is not a checkpoint at all" * 10,
        "header only": data[:30],
        "half": data[: len(data) // 2],
        "missing end": data[:-10],
    }
    flipped = bytearray(data)
    offset = data.index(np.arange(1000, dtype=np.float32)[500:502].tobytes())
    flipped[offset] ^= 0xFF
    cases["flipped byte"] = bytes(flipped)
    for name, content in cases.items():
        bad = tmp_path / f"{name}.npz"
        bad.write_bytes(content)
        with pytest.raises(ValueError, match=CORRUPT):
            io.load(bad)
    np.save(tmp_path / "plain.npy", np.zeros(3))
    with pytest.raises(ValueError, match=CORRUPT + r": it holds a single array"):
        io.load(tmp_path / "plain.npy")
    np.savez(tmp_path / "foreign.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match=CORRUPT + r": no '__fnnet__' entry"):
        io.load(tmp_path / "foreign.npz")
    with pytest.raises(FileNotFoundError):
        io.load(tmp_path / "missing.npz")


def test_safetensors_round_trip(tmp_path):
    pytest.importorskip("safetensors")
    params = nested_tree()
    params.pop("tuple")                          # np.generic leaves
    params["scalars"] = [np.float32(1.5), np.bool_(False), np.int64(-3)]
    params["dtypes"] = {np.dtype(d).name: _array(d, (2, 3)) for d in (np.float16, np.uint16, np.int8, np.bool_)}
    opt_state = optim.adam(1e-3).init({"w": np.ones((2, 2), np.float32)})
    path = tmp_path / "c.safetensors"
    io.save(path, params, opt_state=opt_state, metadata={"epoch": 3})
    ck = io.load(path)
    assert_same_tree(ck.params, params)
    assert_same_tree(ck.opt_state, opt_state)
    assert ck.metadata == {"epoch": 3}
    with pytest.raises(TypeError, match="safetensors cannot store"):
        io.save(path, {"c": np.zeros(2, np.complex64)})
    path.with_name("bad.safetensors").write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ValueError, match=CORRUPT):
        io.load(path.with_name("bad.safetensors"))


# -------------------------------------------------------------------------------------- PyTorch import


def _torch_mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3)).double()


def _fnnet_mlp():
    return L.Sequential([L.Linear(5), L.ReLU(), L.Linear(3)])


def test_load_torch_linear_matches_forward():
    tmodel = _torch_mlp()
    model = _fnnet_mlp()
    params, state = io.load_torch_state_dict(model, tmodel.state_dict())
    assert state == {"0": {}, "1": {}, "2": {}}
    assert params["0"]["weight"].shape == (4, 5) and params["0"]["weight"].dtype == np.float64
    np.testing.assert_array_equal(params["0"]["weight"], tmodel[0].weight.detach().numpy().T)
    x = np.random.default_rng(0).standard_normal((6, 4))
    expected = tmodel(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(model.apply(params, x), expected, rtol=1e-12)
    # with a float32 template: the same structure, cast to the template's dtype
    template = model.init(fnnet.random.key(0), (None, 4))
    params32, _ = io.load_torch_state_dict(model, tmodel.state_dict(), params=template)
    assert tree.structure(params32) == tree.structure(template)
    assert all(leaf.dtype == np.float32 for leaf in tree.leaves(params32))
    np.testing.assert_allclose(model.apply(params32, x.astype(np.float32)), expected, rtol=1e-5, atol=1e-6)
    # numpy arrays work as well as tensors, and the result owns its memory
    numpy_sd = {k: v.numpy() for k, v in tmodel.state_dict().items()}
    params_np, _ = io.load_torch_state_dict(model, numpy_sd)
    assert not np.shares_memory(params_np["0"]["bias"], numpy_sd["0.bias"])


def test_load_torch_no_bias_and_named_children():
    tmodel = torch.nn.Sequential(collections.OrderedDict(
        [("hidden", torch.nn.Linear(3, 2, bias=False)), ("act", torch.nn.Tanh())]))
    model = L.Sequential([L.Linear(2, use_bias=False), L.Tanh()], names=("hidden", "act"))
    params, _ = io.load_torch_state_dict(model, tmodel.state_dict())
    assert set(params["hidden"]) == {"weight"}
    np.testing.assert_array_equal(params["hidden"]["weight"], tmodel.hidden.weight.detach().numpy().T)


def test_load_torch_errors():
    sd = _torch_mlp().state_dict()
    model = _fnnet_mlp()
    missing = {k: v for k, v in sd.items() if k != "2.bias"}
    with pytest.raises(ValueError, match=r"missing key '2.bias' in the state_dict \(needed for fnnet params\['2'\]"):
        io.load_torch_state_dict(model, missing)
    extra = dict(sd, **{"3.weight": torch.zeros(2)})
    with pytest.raises(ValueError, match=r"unexpected key\(s\) \['3.weight'\]"):
        io.load_torch_state_dict(model, extra)
    wrong = L.Sequential([L.Linear(5), L.ReLU(), L.Linear(4)])
    with pytest.raises(ValueError, match=r"'2.weight' has shape \(4, 5\) after transposing|'2.weight' has shape"):
        io.load_torch_state_dict(wrong, sd)
    template = wrong.init(fnnet.random.key(0), (None, 4))
    with pytest.raises(ValueError, match=r"'2.weight' has shape \(3, 5\) in the state_dict, but fnnet "
                                         r"params\['2'\]\['weight'\] has shape \(5, 4\) \(torch shape \(4, 5\)"):
        io.load_torch_state_dict(wrong, sd, params=template)
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        io.load_torch_state_dict(model, [1, 2])


def test_load_torch_conv_batchnorm_layernorm_embedding():
    torch.manual_seed(0)
    tconv = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 5 * 5, 3), torch.nn.LayerNorm(3))
    with torch.no_grad():
        tconv[1].running_mean.uniform_(-1, 1)
        tconv[1].running_var.uniform_(0.5, 2)
        tconv[1].weight.uniform_(0.5, 2)
    model = L.Sequential([L.Conv2D(4, 3, padding=1), L.BatchNorm(), L.ReLU(), L.Flatten(), L.Linear(3),
                          L.LayerNorm()])
    sd = tconv.state_dict()
    params, state = io.load_torch_state_dict(model, sd)
    np.testing.assert_array_equal(params["0"]["weight"], sd["0.weight"].numpy())
    assert params["0"]["weight"].shape == (4, 2, 3, 3)
    np.testing.assert_array_equal(params["1"]["weight"], sd["1.weight"].numpy())
    np.testing.assert_array_equal(state["1"]["mean"], sd["1.running_mean"].numpy())
    np.testing.assert_array_equal(state["1"]["var"], sd["1.running_var"].numpy())
    np.testing.assert_array_equal(params["4"]["weight"], sd["4.weight"].numpy().T)
    np.testing.assert_array_equal(params["5"]["bias"], sd["5.bias"].numpy())
    in_shape = (None, 2, 5, 5)
    template, state_template = model.init(fnnet.random.key(0), in_shape), model.init_state(in_shape)
    params_t, state_t = io.load_torch_state_dict(model, sd, params=template, state=state_template)
    assert tree.structure(params_t) == tree.structure(template)
    assert tree.structure(state_t) == tree.structure(state_template)
    ops = fnnet.ops
    if hasattr(ops, "conv2d") and hasattr(ops, "batch_norm") and hasattr(ops, "layer_norm"):
        x = np.random.default_rng(0).standard_normal((2, 2, 5, 5)).astype(np.float32)
        tconv.eval()
        expected = tconv(torch.tensor(x)).detach().numpy()
        y, _ = model.apply(params_t, x, state=state_t, train=False)
        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)

    temb = torch.nn.Embedding(7, 3)
    emb_params, _ = io.load_torch_state_dict(L.Embedding(7, 3), temb.state_dict())
    np.testing.assert_array_equal(emb_params["weight"], temb.weight.detach().numpy())
    with pytest.raises(ValueError, match=r"'weight' has shape \(7, 3\) but the Embedding layer expects \(8, 3\)"):
        io.load_torch_state_dict(L.Embedding(8, 3), temb.state_dict())
    no_affine, _ = io.load_torch_state_dict(L.BatchNorm(affine=False),
                                            torch.nn.BatchNorm1d(3, affine=False).state_dict())
    assert no_affine == {}


def test_load_torch_into_a_remat_model_matches_torch_forward():
    """Remat adds no key (its block has the plain model's path), and a wrapped Linear is still transposed."""
    torch.manual_seed(1)
    tmodel = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU()), torch.nn.Linear(6, 6),
                                 torch.nn.Tanh(), torch.nn.Linear(6, 3)).double()
    model = L.Sequential([L.Remat(L.Sequential([L.Linear(6), L.ReLU()])), L.Remat(L.Linear(6)), L.Tanh(),
                          L.Remat(L.Linear(3))])
    x = np.random.default_rng(3).standard_normal((5, 4))
    expected = tmodel(torch.tensor(x)).detach().numpy()
    template = model.init(fnnet.random.key(0), (None, 4), np.float64)
    for params, _ in (io.load_torch_state_dict(model, tmodel.state_dict()),
                      io.load_torch_state_dict(model, tmodel.state_dict(), params=template)):
        assert tree.structure(params) == tree.structure(template)
        np.testing.assert_array_equal(params["1"]["weight"], tmodel[1].weight.detach().numpy().T)  # square: (6, 6)
        np.testing.assert_allclose(model.apply(params, x), expected, rtol=1e-12, atol=1e-12)
