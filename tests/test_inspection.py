"""Activation statistics, model summary and abstract (allocation-free) initialisation."""

import math
import time

import attrs
import numpy as np
import pytest

import fnnet
import fnnet.layers as L
import fnnet.ops as ops
from fnnet.summary import eval_shape, summary

KEY = fnnet.random.key(0)


def _cnn():
    return L.Sequential([L.Conv2D(4, 3, padding=1), L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Linear(5), L.Tanh(),
                         L.Linear(3)])


def test_summarize_matches_numpy_including_nan_inf_and_zeros():
    x = np.random.default_rng(0).standard_normal(100_003).astype(np.float32)
    x[:1000] = 0.0
    x[5] = np.nan
    x[7] = np.inf
    x[9] = -np.inf
    s = ops.summarize(x, bins=10)
    finite = x[np.isfinite(x)].astype(np.float64)
    assert s["nan_count"] == 1 and s["inf_count"] == 2 and s["size"] == x.size
    np.testing.assert_allclose(s["mean"], finite.mean(), rtol=1e-9)
    np.testing.assert_allclose(s["std"], finite.std(), rtol=1e-7)
    assert s["min"] == finite.min() and s["max"] == finite.max()
    assert s["zero_fraction"] == np.count_nonzero(x == 0) / x.size
    counts, edges = s["histogram"]
    np.testing.assert_array_equal(counts, np.histogram(finite, bins=10, range=(finite.min(), finite.max()))[0])


def test_record_activations_per_layer_path_against_numpy():
    model = _cnn()
    params = model.init(KEY, (None, 2, 6, 6))
    x = np.random.default_rng(1).standard_normal((3, 2, 6, 6)).astype(np.float32)
    with L.record_activations(bins=8) as rec:
        y = model.apply(params, x)
    acts = rec.activations
    assert sorted(acts) == [str(i) for i in range(7)]
    h = x
    for i, layer in enumerate(model.layers):
        h = layer.apply(params[str(i)], h)
        s = acts[str(i)]
        np.testing.assert_allclose(s["mean"], h.astype(np.float64).mean(), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(s["max"], h.max(), rtol=1e-7)
        assert s["zero_fraction"] == np.count_nonzero(h == 0) / h.size
    np.testing.assert_array_equal(h, y)
    assert acts["1"]["zero_fraction"] > 0.2  # ReLU zeros are visible
    text = rec.table()
    assert "ReLU" in text and "Conv2D" in text


def test_record_gradients_and_nested_paths(tmp_path):
    block = L.Sequential([L.Linear(4), L.Tanh()])
    model = L.Sequential([block, L.Residual(L.Sequential([L.Linear(4), L.ReLU()])), L.Linear(1)])
    params = model.init(KEY, (None, 4), np.float64)
    x = np.random.default_rng(2).standard_normal((6, 4))

    def loss(p):
        return ops.sum(model.apply(p, x))

    with L.record_activations(gradients=True, bins=5) as rec:
        fnnet.grad(loss)(params)
    assert set(fnnet.tree.paths(rec.activations, is_leaf=lambda d: "mean" in d)) == {
        "0/0", "0/1", "1/block/0", "1/block/1", "2"}
    grads = rec.gradients
    # d loss / d output of the last Linear is exactly 1 for every element
    assert grads["2"]["mean"] == 1.0 and grads["2"]["std"] == 0.0
    import matplotlib

    backend = matplotlib.get_backend()
    rec.plot_histograms(tmp_path / "hist.png")
    assert matplotlib.get_backend() == backend  # drawn off-screen: an inline Jupyter backend stays
    assert (tmp_path / "hist.png").stat().st_size > 1000


def test_recording_is_off_by_default():
    model = _cnn()
    params = model.init(KEY, (None, 2, 6, 6))
    assert L.recording.current() is None
    model.apply(params, np.zeros((1, 2, 6, 6), np.float32))


def test_summary_counts_match_hand_computation():
    model = L.Sequential([L.Conv2D(8, 3, padding=1), L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Linear(10)])
    lines = []
    out = summary(model, (4, 1, 8, 8), print_fn=lines.append)
    rows = {r["path"]: r for r in out["rows"]}
    assert rows["0"]["params"] == 8 * 1 * 3 * 3 + 8
    assert rows["4"]["params"] == 8 * 4 * 4 * 10 + 10
    assert out["total"]["params"] == 80 + 1290
    assert out["total"]["param_bytes"] == 4 * 1370
    assert rows["0"]["out_shape"] == (4, 8, 8, 8)
    assert rows["0"]["flops"] == 4 * 8 * 8 * 8 * (2 * 9) + 4 * 8 * 8 * 8
    assert rows["4"]["flops"] == 2 * 4 * 128 * 10 + 4 * 10
    assert rows["1"]["tape_bytes"] == 4 * 8 * 8 * 8 * 4     # ReLU keeps its output
    assert rows["0"]["tape_bytes"] == 4 * 1 * 8 * 8 * 4     # Conv2D keeps its input
    assert "total" in lines[0] and "Conv2D" in lines[0]
    params = model.init(KEY, (4, 1, 8, 8))
    assert sum(p.size for p in fnnet.tree.leaves(params)) == out["total"]["params"]


def test_eval_shape_allocates_nothing_for_a_billion_parameters():
    model = L.Sequential([L.Linear(32768), L.ReLU(), L.Linear(32768)])
    t0 = time.perf_counter()
    shapes = eval_shape(model.init, KEY, (None, 1000))
    elapsed = time.perf_counter() - t0
    n = sum(s.size for s in fnnet.tree.leaves(shapes))
    assert n == 1000 * 32768 + 32768 + 32768 * 32768 + 32768
    assert n > 1_000_000_000
    assert elapsed < 5.0  # generous: no memory is touched (4 GB would be)
    assert shapes["0"]["weight"].dtype == np.float32
    assert math.isclose(fnnet.tree.leaves(shapes)[0].nbytes, 32768 * 4)


def test_eval_shape_validates_like_init():
    with pytest.raises(ValueError, match="last axis of in_shape must be a known size"):
        eval_shape(L.Linear(3).init, KEY, (None, None))


# ------------------------------------------------------------------------- one walker, layers that know themselves
def _blocks(wrap):
    """An MLP whose two blocks (a Sequential and a single Linear) are wrapped by ``wrap``."""
    return L.Sequential([wrap(L.Sequential([L.Linear(8), L.ReLU(), L.Linear(8), L.ReLU()])), wrap(L.Linear(3))])


def test_walk_paths_shapes_and_remat_transparency():
    model = L.Sequential([L.Remat(L.Sequential([L.Linear(4), L.ReLU()])),
                          L.Residual(L.Sequential([L.FanOut(2), L.Parallel([L.Linear(4), L.Remat(L.Tanh())]),
                                                   L.FanInSum()])), L.Remat(L.Linear(2))])
    visits = [(path, type(layer).__name__, shape) for path, layer, shape in L.walk(model, (None, 3))]
    assert visits == [
        ("", "Sequential", (None, 3)), ("0", "Remat", (None, 3)), ("0", "Sequential", (None, 3)),
        ("0/0", "Linear", (None, 3)), ("0/1", "ReLU", (None, 4)), ("1", "Residual", (None, 4)),
        ("1/block", "Sequential", (None, 4)), ("1/block/0", "FanOut", (None, 4)),
        ("1/block/1", "Parallel", ((None, 4), (None, 4))), ("1/block/1/0", "Linear", (None, 4)),
        ("1/block/1/1", "Remat", (None, 4)), ("1/block/1/1", "Tanh", (None, 4)),
        ("1/block/2", "FanInSum", ((None, 4), (None, 4))), ("2", "Remat", (None, 4)), ("2", "Linear", (None, 4)),
    ]
    # a walk path is where the layer's params are (Remat(Linear)'s at "2", not "2/block")
    linear_paths = [path for path, layer, _ in L.walk(model) if type(layer).__name__ == "Linear"]
    assert linear_paths == ["0/0", "1/block/1/0", "2"]
    params = model.init(KEY, (None, 3))
    assert set(fnnet.tree.paths(params)) == {f"{p}/{n}" for p in linear_paths for n in ("weight", "bias")}
    with pytest.raises(ValueError, match=r"^1/1 \(Residual\): the block maps \(None, 2\) to \(None, 5\)"):
        list(L.walk(L.Sequential([L.Linear(4), L.Sequential([L.Linear(2), L.Residual(L.Linear(5))])]), (None, 3)))


def test_recorded_paths_are_the_walks_leaf_paths():
    model = L.Sequential([L.Remat(L.Sequential([L.Linear(4), L.ReLU()])), L.Residual(L.Remat(L.Linear(4))),
                          L.Remat(L.Linear(2))])
    params = model.init(KEY, (None, 3))
    with L.record_activations() as rec:
        model.apply(params, np.ones((2, 3), np.float32))
    leaves = {path: type(layer).__name__ for path, layer, _ in L.walk(model) if not layer.children()}
    assert rec.types == leaves == {"0/0": "Linear", "0/1": "ReLU", "1/block": "Linear", "2": "Linear"}


def test_summary_of_a_remat_model_equals_the_plain_one():
    plain = summary(_blocks(lambda block: block), (4, 5), print_fn=None)
    lines = []
    wrapped = summary(_blocks(L.Remat), (4, 5), print_fn=lines.append)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "remat"} for r in rows]  # noqa: E731
    assert strip(wrapped["rows"]) == strip(plain["rows"])
    assert [r["path"] for r in wrapped["rows"]] == ["0/0", "0/1", "0/2", "0/3", "1"]
    assert [r["remat"] for r in wrapped["rows"]] == ["0", "0", "0", "0", "1"]
    assert [r["remat"] for r in plain["rows"]] == [None] * 5
    for key in ("params", "param_bytes", "flops"):
        assert wrapped["total"][key] == plain["total"][key]
    assert plain["total"]["flops"] == (2 * 4 * 5 * 8 + 32) + 32 + (2 * 4 * 8 * 8 + 32) + 32 + (2 * 4 * 8 * 3 + 12)
    # plain: Linear keeps x (4, 5), ReLU its output, Linear x, ReLU output, Linear x (4, 8): float32
    assert plain["total"]["tape_bytes"] == 4 * (20 + 32 + 32 + 32 + 32) and plain["total"]["recompute_tape_bytes"] == 0
    # checkpointed: each block keeps only its input; recomputing the first block holds its layers' residuals
    assert wrapped["total"]["tape_bytes"] == 4 * (20 + 32)
    assert wrapped["total"]["recompute_tape_bytes"] == 4 * (20 + 32 + 32 + 32)
    assert "(128 B)" in lines[0] and "held only while its block is recomputed" in lines[0]


@attrs.frozen
class _Doubler(L.Layer):
    """A user layer that gives no estimates."""

    def forward(self, params, x, *, key=None, train=False):
        return x * 2.0


@attrs.frozen
class _EstimatedDoubler(_Doubler):
    def flops(self, in_shape):
        return L.base.numel(in_shape)

    def tape_bytes(self, in_shape, dtype):
        return 0


def test_summary_flags_a_user_layer_without_estimates():
    lines = []
    out = summary(L.Sequential([L.Linear(3), _Doubler(), L.Tanh()]), (2, 4), print_fn=lines.append)
    rows = {r["path"]: r for r in out["rows"]}
    assert rows["1"]["flops"] is None and rows["1"]["tape_bytes"] is None
    assert out["total"]["flops"] is None and out["total"]["tape_bytes"] is None
    assert out["total"]["not_estimated"] == ["1"]
    row_line = next(line for line in lines[0].splitlines() if line.startswith("1 "))
    assert row_line.split()[-2:] == ["?", "?"]
    assert "?: not estimated by the layer (define flops() and tape_bytes()): 1" in lines[0]
    out = summary(L.Sequential([L.Linear(3), _EstimatedDoubler(), L.Tanh()]), (2, 4), print_fn=None)
    assert out["total"]["not_estimated"] == [] and out["rows"][1]["flops"] == 6
    assert out["total"]["flops"] == (2 * 2 * 4 * 3 + 6) + 6 + 6


def test_sequential_fusion_follows_the_layers_own_hints():
    assert L.Sequential([L.Linear(3), L.ReLU(), L.Conv2D(2, 1), L.Tanh()])._fused_activation == ("relu", None, None,
                                                                                                   None)
    assert L.Sequential([L.Remat(L.Linear(3)), L.ReLU()])._fused_activation == (None, None)


def test_summary_columns_fit_long_type_names():
    model = L.Sequential([L.Embedding(11, 8), L.LearnedPositionalEmbedding(6), L.Linear(3)])
    lines = []
    summary(model, (2, 6), print_fn=lines.append)
    rows = lines[0].splitlines()
    start = rows[0].index("output shape")
    assert all(r[start - 2:start] == "  " for r in rows[2:5])  # the type column never runs into the shape
    assert "LearnedPositionalEmbedding" in rows[3]
